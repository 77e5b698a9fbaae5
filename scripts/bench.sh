#!/usr/bin/env bash
# make bench: release builds, wrk and valgrind (Debian), the Python baseline's venv, the
# emulator, then the bench.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh bench
# wrk for HTTP load, valgrind (callgrind) for the instruction counts.
for tool in wrk valgrind; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "$tool not found: installing the Debian package $tool" >&2
      (apt-get install -y -q "$tool" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$tool" >/dev/null; })
    fi
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is not on PATH (Debian package $tool)" >&2; exit 1; }
  fi
done
cargo build --release --example noop-lambda --example raw-get-lambda --example fred-get-lambda
scripts/with-emulator.sh cargo bench --bench bench
