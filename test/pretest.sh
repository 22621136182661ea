#!/usr/bin/env bash
# Installs the system tools the integration tests drive (ip, ucarp, tcpdump) when missing.
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ucarp >/dev/null 2>&1 || [ -x /usr/sbin/ucarp ] || need+=(ucarp)
command -v tcpdump >/dev/null 2>&1 || [ -x /usr/bin/tcpdump ] || need+=(tcpdump)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "pretest: missing ${need[*]} and not root; install them or run as root" >&2
    exit 1
  fi
  echo "pretest: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
