#!/usr/bin/env bash
# grpcurl, the outside gRPC client the end-to-end test drives benchtop's
# gRPC service with, built from its Go module into .cache/bin (a no-op once
# there). Usage: scripts/install-grpcurl.sh; prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.9.4
bin="$PWD/.cache/bin/grpcurl"
stamp="$bin.$version"
if [ ! -x "$bin" ] || [ ! -e "$stamp" ]; then
	echo "building grpcurl $version into .cache/bin ..." >&2
	GOBIN="$PWD/.cache/bin" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$version"
	touch "$stamp"
fi
echo "$bin"
