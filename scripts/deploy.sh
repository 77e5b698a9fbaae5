#!/usr/bin/env bash
# The deploy path shared by make and the pipeline: one set of settings
# (terraform/env/$DEPLOY_ENV.tfvars), one remote state (terraform/env/$DEPLOY_ENV.s3.tfbackend,
# written by bootstrap), saved plans only: what is applied is exactly what was shown.
#   deploy.sh bootstrap            create the state bucket, boundary and logging setting (asks)
#   deploy.sh validate             init + terraform validate
#   deploy.sh plan                 init + plan, saved to terraform/$DEPLOY_ENV.tfplan
#   deploy.sh deploy               plan, ask, apply that plan
#   deploy.sh destroy              plan a destroy, ask, apply it; BOOTSTRAP=1 then removes the bootstrap too
#   deploy.sh output NAME          one output of the environment's stack (make url, seed, smoke)
#   deploy.sh take-zips DIR        the pipeline: put the zips of BuildTest's artifact DIR in place
#   deploy.sh apply-approved PLAN  the pipeline's Apply: plan again, apply only if equal to PLAN
# DEPLOY_ENV (default dev) picks the environment; AUTO_APPROVE=1 applies without asking.
set -euo pipefail
cd "$(dirname "$0")/.."

command=${1:?usage: scripts/deploy.sh bootstrap|validate|plan|deploy|destroy|output|take-zips|apply-approved}
env=${DEPLOY_ENV:-dev}
vars=env/$env.tfvars             # paths relative to terraform/, where terraform runs
backend=env/$env.s3.tfbackend
plan=$env.tfplan
tf=(terraform -chdir=terraform)
tf_bootstrap=(terraform -chdir=terraform/bootstrap)

die() {
  echo "error: $*" >&2
  exit 1
}

# Asks on standard input; only "yes" goes on. No terminal and no AUTO_APPROVE=1: stop.
confirm() {
  [ "${AUTO_APPROVE:-0}" = 1 ] && return 0
  printf '\n%s\nType yes to go on: ' "$1" >&2
  local answer
  IFS= read -r answer || die "no answer on standard input: nothing was applied (AUTO_APPROVE=1 applies the saved plan without asking)"
  [ "$answer" = yes ] || die "nothing was applied (the answer was not yes)"
}

[ -f "terraform/$vars" ] || die "terraform/$vars not found: copy terraform/env/dev.tfvars to it and edit it (DEPLOY_ENV=$env)"

# bucket, key and kms_key_id of the backend file, passed to the stack as variables so
# the pipeline's roles can be scoped to exactly this state.
backend_setting() {
  sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\\(.*\\)\"[[:space:]]*$/\\1/p" "terraform/$backend"
}

init() {
  [ -f "terraform/$backend" ] ||
    die "terraform/$backend not found: run 'make bootstrap DEPLOY_ENV=$env' first (it creates the state bucket and writes that file)"
  local args=(-input=false "-backend-config=$backend")
  if [ -s terraform/terraform.tfstate ]; then
    # Deployed before the project had remote state: copy that state over, once.
    echo "terraform/terraform.tfstate holds local state from an earlier deploy: it is copied into the remote state of $backend." >&2
    confirm "Copy the local state into the remote state?"
    "${tf[@]}" init "${args[@]}" -migrate-state -force-copy
    mv terraform/terraform.tfstate "terraform/terraform.tfstate.migrated-$(date +%Y%m%d%H%M%S)"
  else
    # -reconfigure: another environment may have initialised this directory.
    "${tf[@]}" init "${args[@]}" -reconfigure
  fi
}

stack_vars() {
  echo "-var-file=$vars"
  echo "-var=environment=$env"
  echo "-var=state_bucket=$(backend_setting bucket)"
  echo "-var=state_key=$(backend_setting key)"
  echo "-var=state_kms_key_arn=$(backend_setting kms_key_id)"
}

plan() {
  init
  local vars_args=() line
  while IFS= read -r line; do vars_args+=("$line"); done < <(stack_vars)
  "${tf[@]}" plan -input=false ${vars_args[@]+"${vars_args[@]}"} -out="$plan" "$@"
}

# What applying a plan would do: its resource and output changes, without the "no-op"
# entries (they carry each unchanged resource's refreshed values, which may move between
# two plans without anything being changed).
changes() {
  "${tf[@]}" show -json "$1" | python3 -c '
import json, sys
plan = json.load(sys.stdin)
acting = lambda change: change.get("actions") != ["no-op"]
resources = [r for r in plan.get("resource_changes", []) if acting(r.get("change", {}))]
outputs = {k: v for k, v in plan.get("output_changes", {}).items() if acting(v)}
print(json.dumps([resources, outputs], sort_keys=True))'
}

bootstrap_init() {
  # Local state, one file per environment, next to the bootstrap configuration.
  "${tf_bootstrap[@]}" init -input=false -reconfigure "-backend-config=path=$env.tfstate"
}

case $command in
  bootstrap)
    bootstrap_init
    "${tf_bootstrap[@]}" plan -input=false "-var-file=../$vars" "-var=environment=$env" -out="$plan"
    confirm "Create the above for $env (state bucket and key, permissions boundary, API Gateway logging role)?"
    "${tf_bootstrap[@]}" apply -input=false "$plan"
    "${tf_bootstrap[@]}" output -raw backend_config >"terraform/$backend.tmp"
    mv "terraform/$backend.tmp" "terraform/$backend"
    echo "Wrote terraform/$backend. Commit it: make deploy and the pipeline both read it." >&2
    ;;
  validate)
    init
    "${tf[@]}" validate
    ;;
  plan)
    plan
    ;;
  deploy)
    plan
    confirm "Apply the plan above to $env?"
    "${tf[@]}" apply -input=false "$plan"
    ;;
  output)
    init >/dev/null
    "${tf[@]}" output -raw "${2:?usage: deploy.sh output NAME}"
    ;;
  take-zips)
    from=${2:?usage: deploy.sh take-zips DIR}
    for function in product-api cache-invalidator; do
      mkdir -p "target/lambda/$function"
      cp "$from/target/lambda/$function/bootstrap.zip" "target/lambda/$function/bootstrap.zip"
    done
    ;;
  apply-approved)
    approved=${2:?usage: deploy.sh apply-approved PLAN (a plan file in terraform/)}
    [ -f "terraform/$approved" ] || die "terraform/$approved not found: the approved plan"
    plan
    # Anything an earlier stage could have written (the approved plan, the zips) can only
    # make the two differ, and then nothing is applied.
    if [ "$(changes "$approved")" != "$(changes "$plan")" ]; then
      die "the plan of this commit now differs from the approved plan (the state or the zips changed since, or the approved plan is not this commit's): nothing was applied; run the pipeline again"
    fi
    echo "The plan equals the approved plan: applying it." >&2
    "${tf[@]}" apply -input=false "$plan"
    ;;
  destroy)
    plan -destroy
    confirm "Destroy everything above in $env?"
    "${tf[@]}" apply -input=false "$plan"
    if [ "${BOOTSTRAP:-0}" = 1 ]; then
      left=$("${tf[@]}" state list)
      [ -z "$left" ] || die "the state of $env still lists resources, so its bucket stays:
$left"
      bootstrap_init
      "${tf_bootstrap[@]}" plan -destroy -input=false "-var-file=../$vars" "-var=environment=$env" -out="$plan"
      confirm "Also destroy the bootstrap of $env above (the state bucket with every state version in it)?"
      "${tf_bootstrap[@]}" apply -input=false "$plan"
      rm -f "terraform/$backend"
    fi
    ;;
  *)
    die "unknown command '$command'"
    ;;
esac
