# product-catalog: make help lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# cargo-nextest when installed (each test in its own process), cargo test otherwise.
TEST_RUNNER ?= $(shell cargo nextest --version >/dev/null 2>&1 && echo "cargo nextest run --no-fail-fast" || echo "cargo test --no-fail-fast")

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the binaries (debug)
	cargo build --bins

.PHONY: run
run: ## Run the API on 127.0.0.1:3000 with the embedded default: in-process cache, sample catalog
	cargo run --bin product-api

.PHONY: dev
dev: ## Run the API against a local Redis and the DynamoDB emulator, loaded with the sample catalog
	scripts/dev.sh

.PHONY: tools
tools: ## Install what the tests need into git-ignored folders (DynamoDB emulator); check redis-server
	scripts/install-tools.sh

.PHONY: test
test: tools terraform-checks ## Run every test: Terraform checks, unit, HTTP contract, integration against real Redis and the emulator
	scripts/with-emulator.sh $(TEST_RUNNER) --lib --bins --tests

.PHONY: terraform-checks
terraform-checks: tools ## terraform fmt -check and checkov over terraform/ (structural checks are in tests/terraform.rs)
	scripts/terraform-checks.sh

.PHONY: test-unit
test-unit: ## Run the tests that need no services
	$(TEST_RUNNER) --lib --test http --test hostile --test emf --test terraform --test build_settings

.PHONY: test-integration
test-integration: tools ## Run the integration tests (starts their services)
	scripts/with-emulator.sh $(TEST_RUNNER) --test integration

.PHONY: figures
figures: tools ## Run the reliability tests one at a time; writes their figures to docs/RELIABILITY.md
	scripts/figures.sh

.PHONY: bench
bench: ## Benchmarks against floors measured in the same run; writes docs/BENCHMARKS.md
	scripts/bench.sh

.PHONY: fmt
fmt: ## Format the code
	cargo fmt --all

.PHONY: lint
lint: tools ## cargo fmt --check, clippy (warnings are errors), terraform fmt -check and checkov
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	scripts/terraform-checks.sh

# --- AWS -------------------------------------------------------------------------

# x86_64 only: this project's machines cannot download the aarch64 Rust target.
# cargo's JSON messages (stdout) go to a file the checks read; its progress and
# diagnostics stay on stderr, and anything else cargo-lambda printed is shown by the check
# (or here, when the build fails). Zips that fail a check are removed: nothing deploys them.
# CARGO_TARGET_DIR is pinned: Terraform and the checks read ./target/lambda.
LAMBDA_BUILD_MESSAGES := target/lambda-build-messages.json
.PHONY: package
package: ## Build both Lambda zips (x86_64); check they load on provided.al2023 and that AWS-LC was built as .cargo/config.toml asks
	scripts/install-tools.sh package
	@mkdir -p target
	PATH="$(CURDIR)/.tools/venv/bin:$$PATH" CARGO_TARGET_DIR="$(CURDIR)/target" cargo lambda build --release \
		--x86-64 --output-format zip --message-format json-render-diagnostics \
		--bin product-api --bin cache-invalidator > $(LAMBDA_BUILD_MESSAGES) \
		|| { grep -v '^{"reason"' $(LAMBDA_BUILD_MESSAGES) >&2; exit 1; }
	scripts/check-lambda-binaries.sh $(LAMBDA_BUILD_MESSAGES) \
		|| { rm -f target/lambda/*/bootstrap.zip; exit 1; }

# DEPLOY_ENV picks terraform/env/$(DEPLOY_ENV).tfvars (the settings) and
# terraform/env/$(DEPLOY_ENV).s3.tfbackend (the remote state, written by make bootstrap);
# the pipeline uses the same two files.
DEPLOY_ENV ?= dev
export DEPLOY_ENV AUTO_APPROVE BOOTSTRAP
DEPLOY := bash scripts/deploy.sh

.PHONY: bootstrap
bootstrap: ## Once per account and DEPLOY_ENV: state bucket, permissions boundary, API Gateway logging setting (shows the plan, asks)
	$(DEPLOY) bootstrap

.PHONY: validate
validate: ## terraform init (remote state) and validate
	$(DEPLOY) validate

.PHONY: plan
plan: package ## Package, then plan against the remote state; the plan is saved to terraform/$(DEPLOY_ENV).tfplan
	$(DEPLOY) plan

.PHONY: deploy
deploy: package ## Package, plan, ask, apply exactly that plan (AUTO_APPROVE=1 does not ask)
	$(DEPLOY) deploy

.PHONY: destroy
destroy: package ## Plan a destroy, ask, apply it; BOOTSTRAP=1 then also removes the state bucket
	$(DEPLOY) destroy

.PHONY: smoke
smoke: ## GET a seeded id twice, a missing id twice (MISS then HIT), an invalid id (URL=..., default: the deployed API)
	bash scripts/smoke.sh $(URL)

.PHONY: seed
seed: ## Load data/products.json into the deployed table (credentials as the AWS CLI resolves them, when there is one)
	bash scripts/seed.sh

.PHONY: url
url: ## Print the API's invoke URL
	@$(DEPLOY) output api_invoke_url; echo

.PHONY: dashboard
dashboard: ## Print the CloudWatch dashboard URL
	@$(DEPLOY) output dashboard_url; echo
