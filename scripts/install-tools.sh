#!/usr/bin/env bash
# Installs what the tests and the local stack need, into git-ignored folders of the
# project: the DynamoDB emulator (dynalite, from npm). Checks for redis-server.
# Idempotent: does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is not on PATH. $2" >&2; exit 1; }
}

need node "Install Node.js 20 or later (Debian package: nodejs)."
need npm "Install npm (Debian package: npm)."
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found: installing the Debian package redis-server" >&2
    (apt-get install -y -q redis-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; })
  fi
  need redis-server "Install Redis 7 or Valkey 7 (Debian package: redis-server)."
fi

emulator=tools/emulator
stamp=$emulator/node_modules/.installed-from-lock
if [ ! -f "$stamp" ] || ! cmp -s "$emulator/package-lock.json" "$stamp"; then
  echo "installing the DynamoDB emulator (dynalite) into $emulator/node_modules" >&2
  (cd "$emulator" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$emulator/package-lock.json" "$stamp"
fi
