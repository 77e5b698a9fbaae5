#!/usr/bin/env bash
# The Terraform checks that run without providers or AWS: formatting and checkov's
# security policies (every skip sits next to its resource with a reason). The
# structural checks are tests/terraform.rs, run with the other tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v terraform >/dev/null 2>&1; then
  terraform fmt -check -recursive -diff terraform
  echo "terraform fmt: clean"
else
  echo "terraform is not on PATH: the terraform fmt check did NOT run (install Terraform >= 1.6 to run it)" >&2
fi

.tools/venv/bin/checkov --directory terraform --framework terraform --quiet --compact --skip-download
echo "checkov: 0 failed checks"
