#!/usr/bin/env bash
# The local stack: a private cache server (redis-server, or memcached with
# CACHE=memcached) and the DynamoDB emulator on free ports, the Products table created
# and loaded with data/products.json, and product-api in front. Ctrl-C stops everything.
#   make dev                    # Redis
#   CACHE=memcached make dev    # memcached (MEMCACHED_URL)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tools.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cache=${CACHE:-redis}
case "$cache" in
  redis)
    cache_port=${REDIS_PORT:-$(free_port)}
    redis-server --port "$cache_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
    export REDIS_URL="redis://127.0.0.1:$cache_port"
    look="redis-cli -p $cache_port"
    ;;
  memcached)
    cache_port=${MEMCACHED_PORT:-$(free_port)}
    user=(); [ "$(id -u)" = 0 ] && user=(-u root)
    memcached -p "$cache_port" -U 0 -l 127.0.0.1 ${user[@]+"${user[@]}"} >/dev/null &
    export MEMCACHED_URL="memcache://127.0.0.1:$cache_port"
    look="printf 'mg product:P-10001 v t\\r\\n' | nc -q1 127.0.0.1 $cache_port"
    ;;
  *) echo "error: CACHE=$cache: expected redis or memcached" >&2; exit 2 ;;
esac
cache_pid=$!
trap 'kill $cache_pid 2>/dev/null || true' EXIT

cargo build --quiet --bin product-api --bin catalog
export TABLE_NAME=${TABLE_NAME:-Products}
export CACHE_LOOK="$look"
scripts/with-emulator.sh bash -c '
  target/debug/catalog create-table
  target/debug/catalog load data/products.json
  echo "Cache:    $CACHE_LOOK" >&2
  echo "DynamoDB: $AWS_ENDPOINT_URL_DYNAMODB (table $TABLE_NAME)" >&2
  echo "API:      curl -i http://${LISTEN_ADDR:-127.0.0.1:3000}/product/P-10001" >&2
  target/debug/product-api
'
