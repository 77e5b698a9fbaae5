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
	$(TEST_RUNNER) --lib --test http --test hostile --test emf --test terraform

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
TF := terraform -chdir=terraform

# x86_64 only: this project's machines cannot download the aarch64 Rust target.
.PHONY: package
package: ## Build both Lambda zips (x86_64) and check they load on provided.al2023
	scripts/install-tools.sh package
	PATH="$(CURDIR)/.tools/venv/bin:$$PATH" cargo lambda build --release --x86-64 --output-format zip \
		--bin product-api --bin cache-invalidator
	scripts/check-lambda-binaries.sh

.PHONY: plan
plan: package ## terraform init and plan (needs AWS credentials)
	$(TF) init -input=false
	$(TF) plan -input=false

.PHONY: deploy
deploy: package ## Package, then terraform init and apply (needs AWS credentials)
	$(TF) init -input=false
	$(TF) apply -input=false

.PHONY: destroy
destroy: ## terraform destroy (apply table_deletion_protection=false first if you mean it)
	$(TF) destroy -input=false

.PHONY: seed
seed: ## Load data/products.json into the deployed table
	AWS_REGION="$$($(TF) output -raw aws_region)" TABLE_NAME="$$($(TF) output -raw table_name)" \
		cargo run --release --bin catalog -- load data/products.json

.PHONY: url
url: ## Print the API's invoke URL
	@$(TF) output -raw api_invoke_url; echo

.PHONY: dashboard
dashboard: ## Print the CloudWatch dashboard URL
	@$(TF) output -raw dashboard_url; echo
