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
# in the same directory. Lines that are not cargo's (cargo-lambda's own) are shown.
[ -f "$messages" ] || { echo "error: $messages is missing: run make package" >&2; exit 1; }
out_dirs=$(python3 - "$messages" <<'PY'
import json, sys
dirs = set()
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        message = json.loads(line)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        if line.strip():
            print(line.rstrip("\n"), file=sys.stderr)
        continue
    if message.get("reason") == "build-script-executed" and "#aws-lc-sys@" in str(message.get("package_id", "")):
        dirs.add(str(message.get("out_dir", "")))
print("\n".join(sorted(dirs)))
PY
)
builds=$(printf '%s' "$out_dirs" | grep -c . || true)
[ "$builds" = 1 ] || { echo "error: $messages names $builds builds of aws-lc-sys where one was expected (was aws-lc-sys removed or added as a build dependency? then update this check)" >&2; exit 1; }
output=$(dirname "$out_dirs")/output
fail() { echo "error: $1 (aws-lc-sys's build output: $output)" >&2; exit 1; }
[ -f "$output" ] || fail "the build output is missing"

# aws-lc-sys looks up the target-specific name and then the generic one, printing each it
# finds (and a rerun-if-env-changed line before each), then its verdict on the first:
# `Value: ... is true.` or `... is false.`, nothing for a value it cannot read. The
# verdict line right after the found ones for `name`, or nothing.
verdict() {
  awk -v found="cargo:warning=Environment Variable found '$1" '
    index($0, found) == 1 { pending = 1; next }
    pending && /^cargo:rerun-if-env-changed=/ { next }
    pending { last = ($0 ~ /^cargo:warning=Value: /) ? $0 : ""; pending = 0 }
    END { print last }' "$output"
}
grep -Eq '^cargo:rustc-link-lib=static(:[^=]*)?=aws_lc_' "$output" ||
  fail "aws-lc-sys did not link an AWS-LC it compiled itself (a system library, or a dynamic one?): unset AWS_LC_SYS_SYSTEM_DIR and AWS_LC_SYS_STATIC, keep AWS_LC_SYS_USE_SYSTEM=0 as .cargo/config.toml sets it"
if grep -q 'Size-optimized AWS-LC build enabled' "$output" ||
  ! verdict AWS_LC_SYS_SMALL | grep -Eq '^cargo:warning=Value: .* is false\.$'; then
  fail "AWS-LC was not built with AWS_LC_SYS_SMALL=0 (size-optimized, OPENSSL_SMALL: P-256 2-3x slower on every cold start's TLS handshakes): unset the AWS_LC_SYS_SMALL or AWS_LC_SYS_SMALL_x86_64_unknown_linux_gnu that overrides .cargo/config.toml"
fi
verdict AWS_LC_SYS_NO_JITTER_ENTROPY | grep -Eq '^cargo:warning=Value: .* is true\.$' ||
  fail "AWS-LC was built with CPU Jitter Entropy (tens of milliseconds of every cold start): unset the AWS_LC_SYS_NO_JITTER_ENTROPY or AWS_LC_SYS_NO_JITTER_ENTROPY_x86_64_unknown_linux_gnu that overrides .cargo/config.toml"
echo "AWS-LC: compiled by aws-lc-sys, not size-optimized, without CPU Jitter Entropy ($output)"
