#!/usr/bin/env bash
# make demo: twill for real. Attaches three pods (network namespaces) through the CNI chain
# twill → portmap → bandwidth as a runtime would, shows them talking (ping, a TCP transfer,
# a published host port), then tears everything down and checks nothing is left.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "make demo needs root (it creates network namespaces)" >&2; exit 1; }

NET=twill-demo
work=$(mktemp -d /tmp/twill-demo.XXXXXX)
pods=(demo-a demo-b demo-c)
bin="$work/bin"
mkdir -p "$bin"
ln -s "$PWD/dist/twill" "$bin/twill"
for p in portmap bandwidth; do ln -s "/usr/lib/cni/$p" "$bin/$p"; done
export CNI_PATH="$bin" CHAIN_CACHE_DIR="$work"

cat > "$work/$NET.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$NET",
  "plugins": [
    { "type": "twill", "mtu": 1500, "logFile": "$work/twill.log", "stateDir": "$work/state",
      "bpffsRoot": "$work/bpffs", "capabilities": { "bandwidth": true },
      "ipam": { "type": "host-local", "dataDir": "$work/ipam",
                "ranges": [[{ "subnet": "10.123.0.0/24" }], [{ "subnet": "fd00:123::/64" }]],
                "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "::/0" }] } },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "bandwidth", "capabilities": { "bandwidth": true } }
  ]
}
JSON

chain() { node build/tools/dev/chain.js "$@"; }
# Capability args per pod, as a runtime passes them: demo-a publishes a port; demo-c is
# shaped to 100 Mbit/s (and so kept off the eBPF fast path, through the host veth's qdiscs).
caps_for() {
  case "$1" in
    demo-a) echo '{"portMappings":[{"hostPort":8080,"containerPort":5201,"protocol":"tcp"}]}' ;;
    demo-c) echo '{"bandwidth":{"ingressRate":100000000,"ingressBurst":1000000,"egressRate":100000000,"egressBurst":1000000}}' ;;
    *) echo '{}' ;;
  esac
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  set +e
  for p in "${pods[@]}"; do
    [ -f "$work/chain-$p.json" ] && chain DEL "$work/$NET.conflist" "/run/netns/$p" "$p" "$(caps_for "$p")" >/dev/null
    ip netns pids "$p" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "$p" 2>/dev/null
  done
  dist/twill sync --cleanup --conf-dir "$work" >/dev/null 2>&1
  umount "$work/bpffs" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

step "attach three pods through twill → portmap → bandwidth"
declare -A v4 v6
for p in "${pods[@]}"; do
  ip netns add "$p"
  start=$(date +%s%N)
  out=$(chain ADD "$work/$NET.conflist" "/run/netns/$p" "$p" "$(caps_for "$p")")
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  v4[$p]=$(node -e 'const r=JSON.parse(process.argv[1]);console.log(r.ips.find(i=>!i.address.includes(":")).address.split("/")[0])' "$out")
  v6[$p]=$(node -e 'const r=JSON.parse(process.argv[1]);console.log(r.ips.find(i=>i.address.includes(":")).address.split("/")[0])' "$out")
  why=""
  [ "$p" = "${pods[0]}" ] && why="; the network's first ADD loads the eBPF programs and waits for the kernel's verifier, later ADDs reuse them"
  echo "$p: ${v4[$p]} ${v6[$p]}  (chain ADD ${ms} ms${why})"
done
ip netns exec demo-a ip -br addr show eth0

step "pods talk: ping over IPv4 and IPv6"
ip netns exec demo-b ping -c 2 -i 0.2 "${v4[demo-a]}" | tail -2
ip netns exec demo-c ping -6 -c 2 -i 0.2 "${v6[demo-a]}" | tail -2

step "TCP transfer pod-b → pod-a (iperf3, 2 s)"
ip netns exec demo-a iperf3 -s -D -1 -p 5201 >/dev/null
sleep 0.3
ip netns exec demo-b iperf3 -c "${v4[demo-a]}" -p 5201 -t 2 -f g | grep -E 'sender|receiver'

step "published host port: host's 10.123.0.1:8080 → pod-a:5201 (portmap DNAT)"
ip netns exec demo-a iperf3 -s -D -1 -p 5201 >/dev/null
sleep 0.3
iperf3 -c 10.123.0.1 -p 8080 -t 1 -f g | grep -E 'receiver'

step "bandwidth plugin: pod-b → pod-c is shaped to 100 Mbit/s"
ip netns exec demo-c iperf3 -s -D -1 -p 5201 >/dev/null
sleep 0.3
ip netns exec demo-b iperf3 -c "${v4[demo-c]}" -p 5201 -t 2 -f m | grep -E 'receiver'

step "CHECK every pod: twill re-reads the kernel against the cached ADD result"
# Only twill's entry: Debian's portmap 1.1.1 CHECK mis-checks dual-stack mappings.
mkdir -p "$work/check"
node -e 'const l=JSON.parse(require("fs").readFileSync(process.argv[1]));l.plugins=l.plugins.slice(0,1);console.log(JSON.stringify(l))' \
  "$work/$NET.conflist" > "$work/check/check.conflist"
for p in "${pods[@]}"; do chain CHECK "$work/check/check.conflist" "/run/netns/$p" "$p" && echo "$p ok"; done

step "twill endpoints: the eBPF endpoint map and what the fast path carried"
dist/twill endpoints --bpffs-root "$work/bpffs"

step "twill observe: the flows the kernel recorded, with their verdicts (no reader was running)"
dist/twill observe --conf-dir "$work" --last 12

step "twill status"
dist/twill status --conf-dir "$work" || true

step "tear down"
for p in "${pods[@]}"; do
  chain DEL "$work/$NET.conflist" "/run/netns/$p" "$p" "$(caps_for "$p")"
  ip netns del "$p"
done
# The network's guard table outlives its last pod (for the next one); cleanup removes it.
dist/twill sync --cleanup --conf-dir "$work" >/dev/null
guard=$(nft list tables 2>/dev/null | grep -c twill_guard_ || true)
left=$(ls "$work/ipam/$NET" | grep -cv -e '^lock$' -e '^last_reserved_ip' || true)
veths=$(ip -br link | grep -c '^tw' || true)
echo "addresses still reserved: $left; twill veths left: $veths; guard tables left: $guard"
echo "log: $(wc -l < "$work/twill.log") JSON lines in the log file"
[ "$left" -eq 0 ] && [ "$veths" -eq 0 ] && [ "$guard" -eq 0 ]
echo "demo done: nothing left behind"
