#!/usr/bin/env bash
# Builds cnitool from Debian's source package of the CNI library (Debian ships no cnitool
# binary): deb-src is enabled for this one purpose, the source comes from Debian, and Go
# builds it in GOPATH mode with nothing fetched from elsewhere. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$PWD/.cache/cnitool"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "building cnitool needs root (apt)" >&2; exit 1; }
src_list=/etc/apt/sources.list.d/twill-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  . /etc/os-release
  cat > "$src_list" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq >&2
fi
command -v go >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go dpkg-dev >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source -qq golang-github-appc-cni >&2)
gopath="$work/gopath"
mkdir -p "$gopath/src/github.com/containernetworking"
mv "$work"/golang-github-appc-cni-*/ "$gopath/src/github.com/containernetworking/cni"
mkdir -p .cache
(cd "$gopath/src/github.com/containernetworking/cni" && GOPATH="$gopath" GO111MODULE=off GOCACHE="$work/gocache" go build -o "$out" ./cnitool)
echo "$out"
