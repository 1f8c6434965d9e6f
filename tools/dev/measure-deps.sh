#!/usr/bin/env bash
# Measures what the packages the design named but twill declines would cost at start-up, on
# the Node twill's executable is built from: each one bundled by esbuild (as twill is) and
# run "require + first use", interleaved with an empty program, medians of N runs; and
# @vercel/ncc's bundle of twill's CLI against esbuild's. Installs into a scratch directory;
# nothing in the project changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
node_bin=$(tools/build/fetch-node.sh)
runs=${RUNS:-40}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund ip-num@1.6.2 netlink@0.3.0 @vercel/ncc@0.45.0 >/dev/null)
cat > "$work/empty.js" <<'JS'
JS
cat > "$work/ipnum.js" <<'JS'
const { IPv4CidrRange, IPv6 } = require('ip-num');
IPv4CidrRange.fromCidr('10.85.0.0/16').getFirst().nextIPNumber().toString();
IPv6.fromString('fd00:85::1').toString();
JS
cat > "$work/netlink.js" <<'JS'
// The rtnetlink codecs only (the package's socket layer is a native addon of its own).
const rt = require('netlink/dist/rt/structs');
rt.parseLinkMessage(Buffer.alloc(16));
JS
for f in empty ipnum netlink; do
  npx --no-install esbuild --bundle --platform=node --format=cjs --minify --log-level=error "$work/$f.js" --outfile="$work/$f.bundle.js"
done
ms() { local s e; s=$(date +%s%N); "$node_bin" "$1" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
declare -A t
for i in $(seq "$runs"); do for f in empty ipnum netlink; do t[$f]+="$(ms "$work/$f.bundle.js") "; done; done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=$(echo "${t[empty]}" | median)
echo "node $("$node_bin" -v), $runs interleaved runs, medians (µs): empty program $base"
for f in ipnum netlink; do m=$(echo "${t[$f]}" | median); echo "  $f: $m (+$(( m - base )) µs, bundle $(stat -c %s "$work/$f.bundle.js") bytes)"; done
# ncc against esbuild on twill's own entry point (build time and output size).
s=$(date +%s%N); (cd "$work" && npx --no-install ncc build "$OLDPWD/build/cmd/twill.js" -o "$work/ncc" -q -m >/dev/null 2>&1) || echo "  ncc: build failed"
e=$(date +%s%N)
[ -f "$work/ncc/index.js" ] && echo "  ncc bundle of twill: $(stat -c %s "$work/ncc/index.js") bytes in $(( (e - s) / 1000000 )) ms"
s=$(date +%s%N); npx --no-install esbuild --bundle --platform=node --format=esm --minify --log-level=error cmd/twill.ts --outfile="$work/esb.js" --external:koffi; e=$(date +%s%N)
echo "  esbuild bundle of twill: $(stat -c %s "$work/esb.js") bytes in $(( (e - s) / 1000000 )) ms"
