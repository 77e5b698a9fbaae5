#!/usr/bin/env bash
# Runs a command with a fresh in-memory DynamoDB emulator (dynalite) on a free port,
# exported to it as AWS_ENDPOINT_URL_DYNAMODB with dummy credentials, then stops it.
#   scripts/with-emulator.sh cargo test
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh

port=${DYNAMODB_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
log=$(mktemp -t dynalite.XXXXXX.log)
node tools/emulator/node_modules/dynalite/cli.js --host 127.0.0.1 --port "$port" \
  --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >"$log" 2>&1 &
emulator_pid=$!
trap 'kill $emulator_pid 2>/dev/null || true; wait $emulator_pid 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 $emulator_pid 2>/dev/null; then
    echo "error: the DynamoDB emulator (dynalite) did not start:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "error: dynalite is not listening on port $port after 10 s" >&2; cat "$log" >&2; exit 1; }

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_EC2_METADATA_DISABLED=true
echo "DynamoDB emulator at $AWS_ENDPOINT_URL_DYNAMODB" >&2
"$@"
