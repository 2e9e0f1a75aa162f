#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that benchtop's onnx runner loads
# (github.com/yalue/onnxruntime_go v1.27.0 speaks the C API of ONNX Runtime
# 1.24.1). The library comes from the npm package onnxruntime-node, fetched
# with `npm pack` so that none of the package's install scripts run; only the
# one .so is kept, and only if its sha256 is the one pinned here.
#
#   scripts/install-onnxruntime.sh [DEST_DIR]     (default: .cache/onnxruntime)
#
# Idempotent: a library already in place with the right checksum is kept.
set -euo pipefail

VERSION=1.24.1
SHA256=53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4
LIB=libonnxruntime.so.1

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${1:-$root/.cache/onnxruntime}
target=$dest/$LIB

sum() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$target" ] && [ "$(sum "$target")" = "$SHA256" ]; then
	echo "onnxruntime $VERSION already installed: $target"
	exit 0
fi

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) member=package/bin/napi-v6/linux/x64/$LIB ;;
*)
	echo "install-onnxruntime: only linux/x86_64 is pinned here; on $(uname -s)/$(uname -m)," >&2
	echo "download ONNX Runtime $VERSION from https://github.com/microsoft/onnxruntime/releases" >&2
	echo "and point BENCHTOP_ONNXRUNTIME_LIB at its shared library" >&2
	exit 1
	;;
esac

for tool in npm tar sha256sum; do
	if ! command -v "$tool" >/dev/null; then
		echo "install-onnxruntime: $tool is required (on Debian: apt-get install -y npm tar coreutils)" >&2
		exit 1
	fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "fetching onnxruntime-node@$VERSION from npm (about 85 MB) ..."
# --ignore-scripts: pack never runs scripts, but say so for whoever reads this.
(cd "$work" && npm pack --silent --ignore-scripts "onnxruntime-node@$VERSION" >/dev/null)
tgz=$(ls "$work"/onnxruntime-node-*.tgz)
tar -xzf "$tgz" -C "$work" "$member"

got=$(sum "$work/$member")
if [ "$got" != "$SHA256" ]; then
	echo "install-onnxruntime: $member has sha256 $got, want $SHA256; refusing to install it" >&2
	exit 1
fi

mkdir -p "$dest"
# Rename into place so a reader never sees half a library.
cp "$work/$member" "$dest/.$LIB.tmp"
chmod 0644 "$dest/.$LIB.tmp"
mv -f "$dest/.$LIB.tmp" "$target"
echo "installed onnxruntime $VERSION: $target"
