#!/usr/bin/env bash
# Installs the Debian packages slotd needs, only those missing; runs apt-get update at most once.
# Idempotent: a second run on a ready machine does nothing but check.
# Usage: scripts/install-deps.sh [extra-package…]
set -euo pipefail
packages=(build-essential g++ cmake ninja-build ccache pkg-config
  libboost1.81-dev librocksdb-dev libsimdjson-dev libfmt-dev doctest-dev
  libhowardhinnant-date-dev libxxhash-dev tzdata
  python3 ca-certificates "$@")  # extra packages may be named on the command line (bench: wrk curl)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
