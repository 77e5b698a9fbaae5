#!/usr/bin/env bash
# Smoke test of a running API (deployed or local): a seeded id twice (a MISS then a HIT,
# or two HITs when it was cached already, with the same bytes and ETag), a missing id
# twice (404 JSON, MISS then HIT: product-api's own fill and read of the cache), an
# unknown route (404 JSON), an invalid id (400 JSON). Prints each latency; exits non-zero
# on the first surprise.
#   scripts/smoke.sh                          # the deployed API of DEPLOY_ENV (its api_invoke_url)
#   scripts/smoke.sh http://127.0.0.1:3000    # a local server
# SMOKE_ID picks the seeded id (default P-10001, from data/products.json via make seed).
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:-}
if [ -z "$base" ]; then
  base=$(bash scripts/deploy.sh output api_invoke_url) ||
    { echo "smoke: no URL given and no deployed stack to read it from (make deploy, or URL=...)" >&2; exit 1; }
fi
base=${base%/}
id=${SMOKE_ID:-P-10001}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "smoke: FAIL: $*" >&2
  exit 1
}

# get NAME PATH: status, headers and body into $work/NAME.*; prints the status.
get() {
  local name=$1 path=$2 out
  out=$(curl -sS --max-time 15 -o "$work/$name.body" -D "$work/$name.headers" \
    -w '%{http_code} %{time_total}' "$base$path") || fail "GET $path: curl could not complete the request"
  local status=${out% *} seconds=${out#* }
  printf 'smoke: GET %-40s %s %s  %6.1f ms\n' "$path" "$status" "$(header "$name" x-cache)" \
    "$(awk -v s="$seconds" 'BEGIN { print s * 1000 }')" >&2
  echo "$status"
}

# header NAME FIELD: the value of a response header (case-insensitive), without CR.
header() {
  awk -v field="$2" 'BEGIN { IGNORECASE = 1 } tolower($0) ~ "^" tolower(field) ":" { sub(/^[^:]*:[ \t]*/, ""); sub(/\r$/, ""); print; exit }' "$work/$1.headers"
}

expect_json_error() {
  local name=$1 code=$2
  grep -qi '^content-type: application/json' "$work/$name.headers" || fail "$name: the error is not JSON"
  grep -q "\"error\":\"$code\"" "$work/$name.body" || fail "$name: expected error \"$code\", got: $(head -c 200 "$work/$name.body")"
}

status=$(get first "/product/$id")
[ "$status" = 200 ] || fail "GET /product/$id answered $status, expected 200 (is $id in the table? make seed loads it, SMOKE_ID picks another)"
case "$(header first x-cache)" in
  MISS) ;;
  # After make seed the stream's cache-invalidator has cached each new product.
  HIT) echo "smoke: $id was cached already (by the stream's invalidator after make seed, or by a read within the cache TTL)" >&2 ;;
  BYPASS) fail "first GET of $id: X-Cache BYPASS: the function could not use the cache (its log and the CacheErrors metric say why)" ;;
  *) fail "first GET of $id: X-Cache '$(header first x-cache)', expected MISS or HIT" ;;
esac

status=$(get second "/product/$id")
[ "$status" = 200 ] || fail "second GET of $id answered $status"
[ "$(header second x-cache)" = HIT ] || fail "second GET of $id: X-Cache $(header second x-cache), expected HIT"
cmp -s "$work/first.body" "$work/second.body" || fail "the second GET's body differs from the first's"
[ -n "$(header first etag)" ] && [ "$(header first etag)" = "$(header second etag)" ] ||
  fail "ETag missing or different: '$(header first etag)' then '$(header second etag)'"

# A fresh missing id goes to the table, and product-api itself caches the answer (its
# lease and compare-and-set), whatever the invalidator did with the seeded one.
missing="smoke-missing-$RANDOM$RANDOM"
for attempt in first again; do
  status=$(get "missing-$attempt" "/product/$missing")
  [ "$status" = 404 ] || fail "GET of a missing id answered $status, expected 404"
  expect_json_error "missing-$attempt" not_found
done
case "$(header missing-first x-cache)/$(header missing-again x-cache)" in
  MISS/HIT) ;;
  /*) fail "the 404 carries no X-Cache: the deployed product-api is older than this script (make deploy first)" ;;
  BYPASS/*) fail "a missing id: X-Cache BYPASS: the function could not use the cache (its log and the CacheErrors metric say why)" ;;
  *) fail "a missing id twice: X-Cache $(header missing-first x-cache) then $(header missing-again x-cache), expected MISS then HIT (the function could not cache the table's answer: its log and the CacheErrors metric say why; or NEGATIVE_CACHE_TTL_SECONDS is shorter than the time between the two requests)" ;;
esac

# A route nothing answers: the function locally, a gateway response in AWS (deployed
# with the stage), both in the same JSON shape.
status=$(get route "/no-such-route-$RANDOM")
[ "$status" = 404 ] || fail "GET of an unknown route answered $status, expected 404 (API Gateway's 403 means its gateway response is not deployed)"
expect_json_error route not_found
[ "$(header route cache-control)" = no-store ] || fail "an unknown route: Cache-Control '$(header route cache-control)', expected no-store"

status=$(get invalid "/product/bad%01id")
[ "$status" = 400 ] || fail "GET of an invalid id answered $status, expected 400"
expect_json_error invalid invalid_id

echo "smoke: OK ($base)" >&2
