#!/usr/bin/env bash
# make seed: loads data/products.json into the deployed table with the catalog CLI.
# The CLI reads credentials from the environment or from a profile with keys or
# role_arn, not IAM Identity Center (SSO) or credential_process ones: the AWS CLI (v2),
# when there is one ($AWS, default aws), hands it what it resolves.
set -euo pipefail
cd "$(dirname "$0")/.."

outputs_failed() {
  echo "make seed: cannot read the stack's outputs: is it deployed (make deploy), and are your AWS credentials current (after an IAM Identity Center session ends: aws sso login)?" >&2
  exit 1
}
region=$(bash scripts/deploy.sh output aws_region) || outputs_failed
table=$(bash scripts/deploy.sh output table_name) || outputs_failed

# Built before the credentials are exported: they cannot be refreshed, and a first
# release build takes minutes.
cargo build --release --bin catalog

aws=${AWS:-aws}
if command -v "$aws" >/dev/null; then
  if exported=$("$aws" configure export-credentials --format env-no-export); then
    # What the AWS CLI resolved replaces what the environment held (a session token left
    # from other keys would spoil them); only these names are taken, as plain values.
    unset AWS_SESSION_TOKEN AWS_CREDENTIAL_EXPIRATION
    while IFS= read -r line; do
      name=${line%%=*}
      case $name in
        AWS_ACCESS_KEY_ID | AWS_SECRET_ACCESS_KEY | AWS_SESSION_TOKEN | AWS_CREDENTIAL_EXPIRATION)
          export "$name=${line#*=}"
          ;;
      esac
    done <<<"$exported"
  else
    echo "make seed: the AWS CLI exported no credentials (after an IAM Identity Center session ends: aws sso login); the catalog CLI looks for its own" >&2
  fi
fi

AWS_REGION=$region TABLE_NAME=$table exec cargo run --release --bin catalog -- load data/products.json
