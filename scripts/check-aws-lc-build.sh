#!/usr/bin/env bash
# Checks, from cargo's JSON messages of the build of the Lambda zips (the argument), that
# the AWS-LC linked into them was built as .cargo/config.toml asks: compiled by aws-lc-sys,
# not size-optimized, without CPU Jitter Entropy. A test of that file cannot see an
# environment that overrides it (a shell's or CodeBuild's variables); this sees the build.
set -euo pipefail
messages=${1:?usage: check-aws-lc-build.sh CARGO_JSON_MESSAGES}

# aws-lc-sys's build script output for this very build, found through cargo's messages
# (they name the script's directory even when it did not have to run again). Its own
# lines are read, not the files beside them: a run with other settings leaves its objects
# in the same directory. (It prints each variable it finds, the target-specific name
# first, which wins, then the verdict on that one.)
[ -f "$messages" ] || { echo "error: $messages is missing: run make package" >&2; exit 1; }
out_dirs=$(python3 - "$messages" <<'EOF'
import json, sys
dirs = set()
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "build-script-executed" and "#aws-lc-sys@" in message.get("package_id", ""):
        dirs.add(message["out_dir"])
print("\n".join(sorted(dirs)))
EOF
)
builds=$(printf '%s' "$out_dirs" | grep -c . || true)
[ "$builds" = 1 ] || { echo "error: $messages names $builds builds of aws-lc-sys, one expected" >&2; exit 1; }
output=$(dirname "$out_dirs")/output
fail() { echo "error: $1 (aws-lc-sys's build output: $output)" >&2; exit 1; }
[ -f "$output" ] || fail "the build output is missing"
grep -q '^cargo:rustc-link-lib=static=aws_lc_' "$output" ||
  fail "aws-lc-sys did not compile AWS-LC itself (a system library was taken instead?): unset AWS_LC_SYS_SYSTEM_DIR, set AWS_LC_SYS_USE_SYSTEM=0"
if grep -q 'Size-optimized AWS-LC build enabled' "$output"; then
  fail "AWS-LC was built size-optimized (OPENSSL_SMALL: P-256 2-3x slower on every cold start's TLS handshakes): unset the AWS_LC_SYS_SMALL or AWS_LC_SYS_SMALL_x86_64_unknown_linux_gnu that overrides .cargo/config.toml"
fi
grep -A1 "Environment Variable found 'AWS_LC_SYS_NO_JITTER_ENTROPY" "$output" | grep -q 'is true' ||
  fail "AWS-LC was built with CPU Jitter Entropy (tens of milliseconds of every cold start): unset the AWS_LC_SYS_NO_JITTER_ENTROPY or AWS_LC_SYS_NO_JITTER_ENTROPY_x86_64_unknown_linux_gnu that overrides .cargo/config.toml"
echo "AWS-LC: compiled by aws-lc-sys, not size-optimized, without CPU Jitter Entropy ($output)"
