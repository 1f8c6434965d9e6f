#!/usr/bin/env bash
# Installs what building, testing and the demo need on a Debian host: Debian packages
# (only those missing) and the pinned npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/../.."

pkgs=(iproute2 iputils-ping iperf3 containernetworking-plugins nftables iptables ethtool procps time clang libbpf-dev gcc libc6-dev util-linux python3 conntrack containerd runc podman conmon catatonit busybox-static)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# cnitool for the runtime-path tests (built from Debian's source package; see the script).
if [ "$(id -u)" -eq 0 ] && [ ! -x .cache/cnitool ]; then
  tools/build/build-cnitool.sh >/dev/null || echo "warning: could not build cnitool; its test will be skipped" >&2
fi
