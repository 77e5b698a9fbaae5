#!/usr/bin/env bash
# Runs the reliability and healing tests (and the table's timeout storm) one at a time and writes the figures they print
# (`figure: <what> -> <value>`) into docs/RELIABILITY.md; the README points there.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -t figures.XXXXXX.log)
trap 'rm -f "$log"' EXIT
scripts/with-emulator.sh cargo nextest run --test integration --no-capture --test-threads 1 \
  reliability:: healing:: stale::in_a_timeout_storm >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
{
  echo "# Reliability figures"
  echo
  echo "Written by \`make figures\` on $(date -u +%F) ($(nproc) cores) from what"
  echo "\`tests/integration/reliability.rs\`, \`healing.rs\` and \`stale.rs\` print; not edited by hand."
  echo
  echo "| what | figure |"
  echo "| --- | --- |"
  grep '^figure: ' "$log" | sed -E 's/^figure: (.*) -> (.*)$/| \1 | \2 |/'
} >docs/RELIABILITY.md
cat docs/RELIABILITY.md
