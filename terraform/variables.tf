variable "name" {
  description = "Prefix for every resource name."
  type        = string
  default     = "product-catalog"

  validation {
    # ElastiCache ids (the cache is named after it) begin with a letter and have no "--"
    # and no trailing "-".
    condition     = length(var.name) >= 3 && length(var.name) <= 31 && can(regex("^[a-z]([a-z0-9]|-[a-z0-9])*$", var.name))
    error_message = "name must be 3 to 31 lowercase letters, digits or single dashes, starting with a letter and not ending with a dash."
  }
}

variable "environment" {
  description = "Environment name: make passes ENV (terraform/env/<environment>.tfvars); the pipeline plans the same one."
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,19}$", var.environment))
    error_message = "environment must be 1 to 20 lowercase letters, digits or dashes."
  }
}

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

# --- network ---------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC; two /20 private subnets (and two public ones with NAT) are carved from it."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

variable "enable_nat_gateway" {
  description = "Add public subnets and one NAT gateway so the functions can reach the internet. Not needed for DynamoDB (gateway endpoint) or Secrets Manager (interface endpoint)."
  type        = bool
  default     = false
}

# --- cache -----------------------------------------------------------------------

variable "cache_engine" {
  description = "ElastiCache engine: valkey, redis (Redis OSS) or memcached (a cluster of cache_memcached_nodes nodes across AZs, TLS, no AUTH: network access only)."
  type        = string
  default     = "valkey"

  validation {
    condition     = contains(["valkey", "redis", "memcached"], var.cache_engine)
    error_message = "cache_engine must be valkey, redis or memcached."
  }

  validation {
    condition     = var.cache_engine != "memcached" || !(var.cache_serverless || var.cache_cluster_mode || var.cache_multi_az || var.cache_replicas_per_shard > 0)
    error_message = "With cache_engine memcached, set cache_memcached_nodes; cache_serverless, cache_cluster_mode, cache_multi_az and cache_replicas_per_shard are Redis/Valkey settings."
  }
}

variable "cache_memcached_nodes" {
  description = "Memcached nodes (cache_engine memcached), spread across Availability Zones; the functions shard keys over them."
  type        = number
  default     = 2

  validation {
    condition     = var.cache_memcached_nodes >= 2 && var.cache_memcached_nodes <= 10
    error_message = "cache_memcached_nodes must be from 2 (nodes in more than one AZ) to 10 (the most one CloudWatch alarm can watch)."
  }
}

variable "cache_auth" {
  description = "How the functions authenticate to a Valkey or Redis OSS cache: token (an AUTH token kept in Secrets Manager, read at every cold start) or iam (an IAM-enabled ElastiCache user: each function signs its own short-lived token, so a cold start makes no Secrets Manager call and no password exists to rotate). Memcached has no AUTH: token only."
  type        = string
  default     = "token"

  validation {
    condition     = contains(["token", "iam"], var.cache_auth)
    error_message = "cache_auth must be token or iam."
  }

  validation {
    condition     = var.cache_auth == "token" || var.cache_engine != "memcached"
    error_message = "cache_auth = \"iam\" needs Valkey or Redis OSS: ElastiCache Memcached has no AUTH."
  }
}

variable "cache_serverless" {
  description = "Use an ElastiCache Serverless cache instead of a node-based replication group."
  type        = bool
  default     = false
}

variable "cache_node_type" {
  description = "Node type of the replication group."
  type        = string
  default     = "cache.t4g.micro"
}

variable "cache_cluster_mode" {
  description = "Enable cluster mode (several shards) on the replication group."
  type        = bool
  default     = false
}

variable "cache_shards" {
  description = "Number of shards when cluster mode is on."
  type        = number
  default     = 2

  validation {
    condition     = var.cache_shards >= 1 && var.cache_shards <= 500
    error_message = "cache_shards must be between 1 and 500."
  }
}

variable "cache_replicas_per_shard" {
  description = "Read replicas per shard (at least 1 for Multi-AZ failover)."
  type        = number
  default     = 0

  validation {
    condition     = var.cache_replicas_per_shard >= 0 && var.cache_replicas_per_shard <= 5
    error_message = "cache_replicas_per_shard must be between 0 and 5."
  }
}

variable "cache_multi_az" {
  description = "Multi-AZ with automatic failover (needs cache_replicas_per_shard >= 1)."
  type        = bool
  default     = false
}

# --- data ------------------------------------------------------------------------

variable "table_name" {
  description = "Name of the DynamoDB products table (hash key productId, type S)."
  type        = string
  default     = "Products"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be 3 to 255 characters of a-z, A-Z, 0-9, '_', '-', '.'."
  }
}

variable "table_deletion_protection" {
  description = "Protect the table from deletion (set false before `make destroy` if you mean it)."
  type        = bool
  default     = true
}

variable "operator_principal_arns" {
  description = "IAM roles or users of this account (ARNs, wildcards allowed) that alone may assume the catalog operator role (<name>-catalog-operator) to load and edit the table with the catalog CLI. Empty: any principal of this account whose IAM policy allows sts:AssumeRole on it."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.operator_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(user|role)/[^*]", arn))])
    error_message = "operator_principal_arns takes IAM user or role ARNs of this account (arn:aws:iam::<account>:role/<name>, wildcards allowed after the first character of the name or path)."
  }
}

# --- functions -------------------------------------------------------------------

variable "lambda_architecture" {
  description = "Instruction set of both functions; the zips must be built for it (make package builds x86_64)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "lambda_memory_mb" {
  description = "Memory of the product-api function, in MB (CPU scales with it)."
  type        = number
  default     = 256

  validation {
    condition     = var.lambda_memory_mb >= 128 && var.lambda_memory_mb <= 10240
    error_message = "lambda_memory_mb must be between 128 and 10240."
  }
}

variable "trusted_roots" {
  description = "The roots the functions trust for TLS (TRUSTED_ROOTS): amazon (the Amazon Trust Services roots compiled into the binaries, which sign every endpoint they call in the aws partition; a cold start parses 5 certificates instead of about 150) or system (the runtime's CA bundle). Unset: amazon in the aws partition, system in any other."
  type        = string
  default     = null

  validation {
    condition     = var.trusted_roots == null ? true : contains(["amazon", "system"], var.trusted_roots)
    error_message = "trusted_roots must be amazon or system (or unset)."
  }
}

variable "product_api_zip" {
  description = "Path of the product-api deployment package built by make package."
  type        = string
  default     = "../target/lambda/product-api/bootstrap.zip"
}

variable "cache_invalidator_zip" {
  description = "Path of the cache-invalidator deployment package built by make package."
  type        = string
  default     = "../target/lambda/cache-invalidator/bootstrap.zip"
}

variable "product_api_reserved_concurrency" {
  description = "Reserved concurrency of product-api (-1: unreserved, the default). A reservation bounds what a spike can cost, but AWS refuses one that leaves fewer than 100 unreserved (new accounts may have a quota of 10 in all): raise the quota first."
  type        = number
  default     = -1

  validation {
    condition     = var.product_api_reserved_concurrency == -1 || var.product_api_reserved_concurrency >= 1
    error_message = "product_api_reserved_concurrency must be -1 (unreserved) or at least 1."
  }
}

variable "cache_ttl_seconds" {
  description = "TTL of product:<id> entries (CACHE_TTL_SECONDS)."
  type        = number
  default     = 300

  validation {
    condition     = var.cache_ttl_seconds >= 1 && var.cache_ttl_seconds <= 2592000 && floor(var.cache_ttl_seconds) == var.cache_ttl_seconds
    error_message = "cache_ttl_seconds must be a whole number between 1 and 2592000."
  }
}

variable "negative_cache_ttl_seconds" {
  description = "How long an unknown id is remembered (NEGATIVE_CACHE_TTL_SECONDS)."
  type        = number
  default     = 30

  validation {
    condition     = var.negative_cache_ttl_seconds >= 1 && var.negative_cache_ttl_seconds <= 3600 && floor(var.negative_cache_ttl_seconds) == var.negative_cache_ttl_seconds
    error_message = "negative_cache_ttl_seconds must be a whole number between 1 and 3600."
  }
}

variable "stale_ttl_seconds" {
  description = "How long a last-known-good copy of each served product is kept, to answer STALE while DynamoDB cannot (STALE_TTL_SECONDS; 0 keeps none)."
  type        = number
  default     = 86400

  validation {
    condition     = var.stale_ttl_seconds >= 0 && var.stale_ttl_seconds <= 2592000 && floor(var.stale_ttl_seconds) == var.stale_ttl_seconds
    error_message = "stale_ttl_seconds must be a whole number between 0 (no copies) and 2592000."
  }
}

variable "cache_ttl_jitter_percent" {
  description = "Up to this percentage is taken at random off each product entry's TTL, so entries filled together do not expire together (CACHE_TTL_JITTER_PERCENT; 0 keeps the TTL exact)."
  type        = number
  default     = 0

  validation {
    condition     = var.cache_ttl_jitter_percent >= 0 && var.cache_ttl_jitter_percent <= 50 && floor(var.cache_ttl_jitter_percent) == var.cache_ttl_jitter_percent
    error_message = "cache_ttl_jitter_percent must be a whole number from 0 to 50."
  }
}

variable "redis_timeout_ms" {
  description = "Bound on every Redis command before a request is served from DynamoDB (REDIS_TIMEOUT_MS)."
  type        = number
  default     = 50

  validation {
    condition     = var.redis_timeout_ms >= 1 && var.redis_timeout_ms <= 10000 && floor(var.redis_timeout_ms) == var.redis_timeout_ms
    error_message = "redis_timeout_ms must be a whole number between 1 and 10000."
  }
}

variable "http_max_age_seconds" {
  description = "Cache-Control max-age of 200 responses (HTTP_MAX_AGE_SECONDS)."
  type        = number
  default     = 60

  # As product-api checks it at start-up: refused there, it would stop every cold start.
  validation {
    condition     = var.http_max_age_seconds >= 0 && var.http_max_age_seconds <= 31536000 && floor(var.http_max_age_seconds) == var.http_max_age_seconds
    error_message = "http_max_age_seconds must be a whole number from 0 to 31536000 (a year)."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the EMF metrics; the dashboard and alarms read the same one."
  type        = string
  default     = "ProductCatalog"

  # As the binaries check METRICS_NAMESPACE at start-up (src/config.rs), and CloudWatch.
  validation {
    condition     = can(regex("^[0-9A-Za-z ._/#:-]{1,255}$", var.metrics_namespace)) && can(regex("[^ ]", var.metrics_namespace)) && !startswith(var.metrics_namespace, ":") && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be 1 to 255 characters of 0-9 A-Z a-z . - _ / # : and space, not all spaces, not starting with ':' or AWS/."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' and the API's log groups."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts."
  }
}

# --- api -------------------------------------------------------------------------

variable "api_stage_name" {
  description = "Name of the REST API stage."
  type        = string
  default     = "prod"
}

variable "api_throttle_rate" {
  description = "Steady-state requests per second the stage accepts, per method (GET and HEAD each)."
  type        = number
  default     = 1000
}

variable "api_throttle_burst" {
  description = "Burst of requests the stage accepts, per method (GET and HEAD each)."
  type        = number
  default     = 2000
}

# --- monitoring ------------------------------------------------------------------

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (empty: no subscription)."
  type        = string
  default     = ""
}

variable "min_hit_ratio" {
  description = "Alarm when the cache hit ratio stays below this (0 to 1)."
  type        = number
  default     = 0.8

  validation {
    condition     = var.min_hit_ratio >= 0 && var.min_hit_ratio <= 1
    error_message = "min_hit_ratio must be between 0 and 1."
  }
}

# --- pipeline --------------------------------------------------------------------

variable "enable_pipeline" {
  description = "Create the CodePipeline (source, build and test, plan, approval, apply). It plans with this same tfvars file and state, so set it here, not on the command line."
  type        = bool
  default     = false

  validation {
    condition     = !var.enable_pipeline || (var.state_bucket != "" && var.state_key != "" && var.state_kms_key_arn != "")
    error_message = "enable_pipeline needs the remote state: run make bootstrap, then make deploy (it passes state_bucket, state_key and state_kms_key_arn)."
  }
}

variable "repository_id" {
  description = "Source repository of the pipeline, as owner/name."
  type        = string
  default     = "my-org/product-catalog"
}

variable "repository_branch" {
  description = "Branch the pipeline builds."
  type        = string
  default     = "main"
}

variable "source_provider" {
  description = "Provider of the CodeStar connection: GitHub, GitLab or Bitbucket (self-hosted providers need a host, which this stack does not create)."
  type        = string
  default     = "GitHub"

  validation {
    condition     = contains(["GitHub", "GitLab", "Bitbucket"], var.source_provider)
    error_message = "source_provider must be GitHub, GitLab or Bitbucket."
  }
}

# --- bootstrap (make passes these from terraform/env/<env>.s3.tfbackend) -------------

variable "manage_api_gateway_logging" {
  description = "make bootstrap points the account's API Gateway logging setting (one per account and region) at its own role, and the stage waits for that role; false (for bootstrap and stack alike) if the account already has one."
  type        = bool
  default     = true
}

variable "state_bucket" {
  description = "S3 bucket of this stack's state (make passes it from the backend file); the pipeline's roles are scoped to it."
  type        = string
  default     = ""
}

variable "state_key" {
  description = "Key of this stack's state object (make passes it from the backend file)."
  type        = string
  default     = ""
}

variable "state_kms_key_arn" {
  description = "KMS key of the state bucket (make passes it from the backend file)."
  type        = string
  default     = ""
}
