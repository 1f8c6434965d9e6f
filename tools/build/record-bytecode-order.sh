#!/usr/bin/env bash
# Records which functions the CNI verbs of dist/twill load (Bun's BUN_BYTECODE_ORDER_OUT), into
# tools/build/bytecode-order/, which tools/build/build-bun.sh hands to `bun build --bytecode-order`:
# the bytecode a CNI call runs is then laid out together at the front, so a call touches fewer
# pages of the executable (one ADD: ~0.5 MB less peak RSS). Like a PGO profile, the files are
# kept in the repository, gzipped (generated data, not for reading), and stay valid as the code
# changes (functions are matched by hash; a stale profile only lays out less well). Run as root,
# after `make`: the verbs run for real, in a network namespace of their own, and everything they
# made is removed.
set -euo pipefail
cd "$(dirname "$0")/../.."
test "$(id -u)" -eq 0 || { echo "needs root (the verbs attach a pod)" >&2; exit 1; }
bin=$PWD/dist/twill
out=$PWD/tools/build/bytecode-order
work=$(mktemp -d)
ns=twill-order-$$
cleanup() {
  for dp in routed:10.250.0.0/24 ebpf:10.250.1.0/24; do # the networks' host-wide state
    printf '%s' "$(conf "${dp%%:*}" "${dp#*:}")" | sed 's|}$|,"cni.dev/valid-attachments":[]}|' \
      | CNI_COMMAND=GC "$bin" >/dev/null 2>&1 || true
    ip netns del "$ns-${dp%%:*}" 2>/dev/null || true
  done
  if mountpoint -q "$work/bpffs"; then umount "$work/bpffs"; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$out" "$work/order"
export CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni:/opt/cni/bin
conf() {
  printf '{"cniVersion":"1.1.0","name":"twill-order-%s","type":"twill","datapath":"%s","stateDir":"%s/state","bpffsRoot":"%s/bpffs","ipam":{"type":"host-local","dataDir":"%s/ipam","ranges":[[{"subnet":"%s"}]],"routes":[{"dst":"0.0.0.0/0"}]}}' \
    "$1" "$1" "$work" "$work" "$work" "$2"
}
# The most common calls first: an ADD of a routed pod, of an eBPF pod, a DEL.
run() { # verb datapath subnet [profile]
  local env=(CNI_CONTAINERID=order-$$-$2 CNI_NETNS=/run/netns/$ns-$2 CNI_COMMAND=$1)
  if [ -n "${4:-}" ]; then env+=(BUN_BYTECODE_ORDER_OUT="$work/order/$4.txt"); fi
  env "${env[@]}" "$bin" <<<"$(conf "$2" "$3")" >/dev/null
}
ip netns add "$ns-routed"
ip netns add "$ns-ebpf"
run ADD routed 10.250.0.0/24 add
run ADD ebpf 10.250.1.0/24 add-ebpf
run DEL routed 10.250.0.0/24 del
run DEL ebpf 10.250.1.0/24
# -n: no name or time in the header, so an unchanged profile is an unchanged file.
for f in "$work"/order/*.txt; do
  gzip -9n -c "$f" > "$out/$(basename "$f").gz"
  echo "$(wc -l < "$f") lines: $out/$(basename "$f").gz"
done
