#!/usr/bin/env bash
# Builds dist/twill-node, the Node single-executable build (TWILL_BIN=dist/twill-node runs the
# tests against it). Any failure exits non-zero and leaves no dist/twill-node behind, so
# nothing (the tests above all) can run against an older executable by mistake.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -f dist/twill-node
node_bin=$(tools/build/fetch-node.sh)
# esbuild's bundle trips a harmless V8 warning while the code cache is made: hide only that.
TWILL_NODE=$node_bin "${NODE:-node}" tools/build/build.mjs 2>&1 | { grep -v "Can't find string offset" || true; }
test -x dist/twill-node
