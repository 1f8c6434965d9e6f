#!/usr/bin/env bash
# Fetches the pinned Node.js LTS binary that dist/twill is built from (the npm registry ships
# it as node-linux-<arch>), so the executable does not depend on the host's Node version.
# A current LTS starts a single executable in well under half the time Node 20 needs.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(node -p 'require("./package.json").config.seaNodeVersion')
arch=$(node -p 'process.arch')
dest=".cache/node-$version-$arch"
if [ ! -x "$dest/bin/node" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$version" >/dev/null)
  mkdir -p "$dest"
  tar -xzf "$tmp"/node-linux-"$arch"-"$version".tgz -C "$dest" --strip-components=1 package/bin/node
fi
echo "$dest/bin/node"
