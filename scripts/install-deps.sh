#!/usr/bin/env bash
# Installs what slotd needs, only what is missing; runs apt-get update at most once.
# Debian packages, then the npm packages of the UI tests (tests/ui: playwright-core, which
# drives Debian's chromium — no browser download).
# Idempotent: a second run on a ready machine does nothing but check.
# Usage: scripts/install-deps.sh [extra-package…]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
packages=(build-essential g++ cmake ninja-build ccache pkg-config
  libboost1.81-dev librocksdb-dev libsimdjson-dev libfmt-dev doctest-dev
  libhowardhinnant-date-dev libxxhash-dev tzdata libssl-dev openssl
  python3 ca-certificates
  python3-icalendar  # parses the served .ics in tests/booking_changes_test.py
  libjs-chart.js  # Chart.js, compiled into slotd for the dashboard
  chromium        # the browser of the UI tests
  clang-14 libclang-rt-14-dev  # libFuzzer and its sanitizers, for the fuzz targets (tests/fuzz)
  libnats-dev nats-server  # cluster mode (cluster/): the NATS C client, and JetStream for its tests
  "$@")  # extra packages may be named on the command line (bench: wrk curl)
# Node.js and npm for the UI tests: Debian's, unless the machine already has them (a
# nodejs package from elsewhere bundles its own npm, which Debian's npm would conflict with).
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
  else
    SUDO=
  fi
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages exactly as package-lock.json pins them; again only when something is missing
# or the lock file changed since the last install.
ui="$root/tests/ui"
stamp="$ui/node_modules/.installed-lock"
if ! cmp -s "$ui/package-lock.json" "$stamp" 2>/dev/null; then
  echo "install-deps: npm ci in tests/ui"
  (cd "$ui" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
  cp "$ui/package-lock.json" "$stamp"
fi
