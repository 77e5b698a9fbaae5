#!/usr/bin/env bash
# The local stack: a private redis-server and the DynamoDB emulator on free ports, the
# Products table created and loaded with data/products.json, and product-api in front.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port=${REDIS_PORT:-$(free_port)}
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null || true' EXIT

cargo build --quiet --bin product-api --bin catalog
export TABLE_NAME=${TABLE_NAME:-Products}
export REDIS_URL="redis://127.0.0.1:$redis_port"
scripts/with-emulator.sh bash -c '
  target/debug/catalog create-table
  target/debug/catalog load data/products.json
  echo "Redis:    redis-cli -p '"$redis_port"'" >&2
  echo "DynamoDB: $AWS_ENDPOINT_URL_DYNAMODB (table $TABLE_NAME)" >&2
  echo "API:      curl -i http://${LISTEN_ADDR:-127.0.0.1:3000}/product/P-10001" >&2
  target/debug/product-api
'
