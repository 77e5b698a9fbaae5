# Deploy settings of the "dev" environment: make (DEPLOY_ENV=dev, the default) and the pipeline
# both plan with this file, so a setting made here holds for every way of deploying.
# Copy it to <env>.tfvars for another environment (make ... DEPLOY_ENV=<env>). Every variable is
# described in terraform/variables.tf; what is left out keeps its default.
# Another environment in the same account and region also needs its own table_name
# (default "Products") and metrics_namespace (default "ProductCatalog"), the two names
# that `name` does not prefix, and manage_api_gateway_logging = false (one per account and region).

name       = "product-catalog"
aws_region = "eu-west-1"

# E-mail address that receives the alarms (AWS sends a confirmation mail first).
alarm_email = ""

# Protects the table from `make destroy`: set false and `make deploy` first if you mean it.
table_deletion_protection = true

# Who may assume <name>-catalog-operator to load and edit the table with the catalog CLI
# (README, "Operator CLI"): IAM role or user ARNs. Empty: any principal of this account
# whose IAM policy allows sts:AssumeRole on it.
operator_principal_arns = []

# The account's API Gateway logging role (one per account and region). Leave true on a
# new account; set false if the account already has one (AWS console: API Gateway >
# Settings), in which case make bootstrap does not create one either.
manage_api_gateway_logging = true

# The pipeline (CodePipeline: build and test, plan, approval, apply). Turn it on here,
# then `make deploy`; see the README's First deploy.
enable_pipeline   = false
repository_id     = "my-org/product-catalog"
repository_branch = "main"
source_provider   = "GitHub"
