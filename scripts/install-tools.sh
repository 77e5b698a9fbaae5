#!/usr/bin/env bash
# Installs what the tests, the local stack and packaging need, into git-ignored folders
# of the project: the DynamoDB emulator (dynalite, from npm, into tools/emulator) and
# Python tools (into .tools/venv). Checks for redis-server and memcached (installing the
# Debian packages when missing and run as root). Idempotent.
#   scripts/install-tools.sh            # tests: emulator, checkov
#   scripts/install-tools.sh package    # packaging: cargo-lambda, ziglang
#   scripts/install-tools.sh bench      # benchmarks: the test tools, and the Python
#                                       # baseline handler's own venv (.tools/demo-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is not on PATH. $2" >&2; exit 1; }
}

python_tools() {
  local requirements=$1 venv=${2:-.tools/venv}
  need python3 "Install Python 3.11 or later (Debian package: python3, python3-venv)."
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  local stamp="$venv/.installed-$(basename "$requirements")"
  if [ ! -f "$stamp" ] || ! cmp -s "$requirements" "$stamp"; then
    echo "installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
  fi
}

if [ "$what" = package ]; then
  # The zips' check (check-lambda-binaries.sh) reads them, after a build of minutes.
  for tool in file readelf objdump; do
    need "$tool" "The zips' check needs file and binutils (Debian packages: file, binutils)."
  done
  python_tools tools/requirements-package.txt
  exit 0
fi

need node "Install Node.js 20 or later (Debian package: nodejs)."
need npm "Install npm (Debian package: npm)."
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found: installing the Debian package redis-server" >&2
    (apt-get install -y -q redis-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; })
  fi
  need redis-server "Install Redis 7 or Valkey 7 (Debian package: redis-server)."
fi
need redis-cli "Install redis-cli (Debian package: redis-tools)."
# The memcached engine's tests start their own memcached (1.6 or later: meta commands).
if ! command -v memcached >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "memcached not found: installing the Debian package memcached" >&2
    (apt-get install -y -q memcached >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q memcached >/dev/null; })
    # The package starts a system memcached on 11211; the tests use their own, and
    # nothing here needs that one.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now memcached >/dev/null 2>&1 || true; fi
  fi
  need memcached "Install memcached 1.6 or later (Debian package: memcached)."
fi
memcached_version=$(memcached -V | sed -n 's/^memcached \([0-9]*\)\.\([0-9]*\).*/\1.\2/p')
case "$memcached_version" in
  1.[6-9]|1.[1-9][0-9]|[2-9].*) ;;
  *) echo "error: memcached ${memcached_version:-of unknown version} is too old: the tests need 1.6 or later (meta commands). $(command -v memcached): $(memcached -V)" >&2; exit 1 ;;
esac
# Every read sends SET ... NX GET, which Redis 7.0 added: an older server fails the tests
# in ways that look like bugs, so refuse it here, by name. Valkey reports its own version.
redis_version=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\.\([0-9]*\).*/\1.\2/p')
if [ "${redis_version%%.*}" -lt 7 ] 2>/dev/null || [ -z "$redis_version" ]; then
  echo "error: redis-server ${redis_version:-of unknown version} is too old: the tests need Redis 7.0 or later, or Valkey 7.2 or later (SET ... NX GET). $(command -v redis-server): $(redis-server --version)" >&2
  exit 1
fi

emulator=tools/emulator
stamp=$emulator/node_modules/.installed-from-lock
if [ ! -f "$stamp" ] || ! cmp -s "$emulator/package-lock.json" "$stamp"; then
  echo "installing the DynamoDB emulator (dynalite) into $emulator/node_modules" >&2
  (cd "$emulator" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$emulator/package-lock.json" "$stamp"
fi

python_tools tools/requirements-test.txt
if [ "$what" = bench ]; then
  # Apart from the test tools: the baseline gets the library versions it pins, not moto's.
  python_tools tools/requirements-bench.txt .tools/demo-venv
fi
