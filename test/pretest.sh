#!/usr/bin/env bash
# Installs the system tools the integration tests (or, with arguments, only the named tools)
# drive, when they are missing: ip (iproute2), ucarp, tcpdump, systemctl (systemd, booted as
# PID 1 of a namespace by test/integration/systemd.test.ts), nft (nftables: the fault suite's
# packet loss, since netem is not available on every kernel), keepalived (the VRRPv3 peer of
# test/integration/vrrp-keepalived.test.ts).
set -euo pipefail
declare -A pkg=([ip]=iproute2 [ucarp]=ucarp [tcpdump]=tcpdump [systemctl]=systemd [nft]=nftables [keepalived]=keepalived)
tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(ip ucarp tcpdump systemctl nft keepalived)
need=()
for t in "${tools[@]}"; do
  command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || [ -x "/sbin/$t" ] || need+=("${pkg[$t]}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${need[*]} and not root: install them, or run as root" >&2
    exit 1
  fi
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
