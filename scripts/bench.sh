#!/usr/bin/env bash
# make bench: release builds, wrk (Debian) for HTTP load, the Python baseline's venv, the
# emulator, then the bench.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh bench
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "wrk not found: installing the Debian package wrk" >&2
    (apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; })
  fi
  command -v wrk >/dev/null 2>&1 || { echo "error: wrk is not on PATH (Debian package wrk)" >&2; exit 1; }
fi
cargo build --release --example noop-lambda --example raw-get-lambda --example fred-get-lambda
scripts/with-emulator.sh cargo bench --bench bench
