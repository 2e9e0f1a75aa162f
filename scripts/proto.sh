#!/usr/bin/env bash
# Regenerates engine/v2pb from engine/v2pb/inference.proto. The generated
# code is committed, so building and `make test` need none of this; only a
# change to the .proto does. Needs protoc (Debian: apt-get install
# protobuf-compiler); the Go plugins are built from their modules at the
# versions below, into .cache/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
export GOBIN="$PWD/.cache/bin"
go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
PATH="$GOBIN:$PATH" protoc -I engine/v2pb \
  --go_out=engine/v2pb --go_opt=paths=source_relative \
  --go-grpc_out=engine/v2pb --go-grpc_opt=paths=source_relative \
  engine/v2pb/inference.proto
echo "regenerated engine/v2pb"
