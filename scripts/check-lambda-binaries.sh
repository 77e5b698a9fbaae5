#!/usr/bin/env bash
# Checks that each Lambda zip holds a `bootstrap` that loads on provided.al2023: a static
# binary, or one that needs glibc 2.34 at most (the runtime's glibc), without its symbol
# table; and that the AWS-LC
# inside was built as .cargo/config.toml asks, which a test of that file cannot see
# through an environment that overrides it (a shell's or CodeBuild's variables).
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo's JSON messages from the build of these zips (make package writes them).
messages=${1:?usage: check-lambda-binaries.sh CARGO_JSON_MESSAGES (make package passes them)}
max_glibc=2.34
# Without them a check would fail with a wrong reason, or pass unseen (readelf's).
for tool in file readelf objdump python3; do
  command -v "$tool" > /dev/null ||
    { echo "error: $tool is missing: the zips' checks need file, binutils (readelf, objdump) and python3" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for function in product-api cache-invalidator; do
  zip=target/lambda/$function/bootstrap.zip
  [ -f "$zip" ] || { echo "error: $zip is missing: run make package" >&2; exit 1; }
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("bootstrap", sys.argv[2])' "$zip" "$work/$function"
  binary=$work/$function/bootstrap
  file "$binary" | grep -q 'ELF 64-bit LSB.*x86-64' || { echo "error: $function: bootstrap is not an x86-64 ELF binary" >&2; exit 1; }
  # cargo drops the profile's strip when a package override leaves it out (Cargo.toml).
  if readelf -S "$binary" | grep -q '\.symtab'; then
    echo "error: $function: bootstrap carries its symbol table: set strip = \"symbols\" in the release profile's product-catalog override (Cargo.toml)" >&2
    rm -f target/lambda/*/bootstrap.zip
    exit 1
  fi
  needed=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1 || true)
  if [ -z "$needed" ]; then
    file "$binary" | grep -q 'statically linked' || { echo "error: $function: no glibc symbols but not static either" >&2; exit 1; }
    verdict="static"
  elif [ "$(printf '%s\n%s\n' "$needed" "$max_glibc" | sort -V | tail -n 1)" = "$max_glibc" ]; then
    verdict="needs glibc $needed <= $max_glibc"
  else
    echo "error: $function needs glibc $needed, but provided.al2023 has $max_glibc" >&2
    exit 1
  fi
  printf '%s: %s, bootstrap %s bytes, %s: loads on provided.al2023\n' "$function" "$zip" "$(wc -c < "$binary" | tr -d ' ')" "$verdict"
done

scripts/check-aws-lc-build.sh "$messages"
