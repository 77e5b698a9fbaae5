variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "architecture" {
  description = "x86_64 or arm64."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "memory_mb" {
  description = "Memory of product-api, in MB."
  type        = number
  default     = 256
}

variable "trusted_roots" {
  description = "TRUSTED_ROOTS of both functions: amazon (the Amazon Trust Services roots compiled into the binaries) or system (the runtime's CA bundle)."
  type        = string

  validation {
    condition     = contains(["amazon", "system"], var.trusted_roots)
    error_message = "trusted_roots must be amazon or system."
  }
}

variable "product_api_zip" {
  description = "Deployment package of product-api (a zip holding bootstrap)."
  type        = string
}

variable "cache_invalidator_zip" {
  description = "Deployment package of cache-invalidator (a zip holding bootstrap)."
  type        = string
}

variable "product_api_reserved_concurrency" {
  description = "Reserved concurrency of product-api (-1: unreserved)."
  type        = number
  default     = -1
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of both functions' roles."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the functions."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the functions."
  type        = string
}

variable "table_name" {
  description = "Products table name."
  type        = string
}

variable "table_arn" {
  description = "Products table ARN."
  type        = string
}

variable "table_stream_arn" {
  description = "Products table stream ARN."
  type        = string
}

variable "redis_url" {
  description = "Redis cache URL without password; null when the cache is Memcached."
  type        = string
  default     = null
}

variable "redis_auth_secret_arn" {
  description = "Secret holding the Redis AUTH token; null with IAM authentication or when the cache is Memcached."
  type        = string
  default     = null
}

variable "redis_iam_user" {
  description = "IAM-enabled ElastiCache user the functions authenticate as (REDIS_IAM_USER); null to use the AUTH secret."
  type        = string
  default     = null
}

variable "redis_iam_cache" {
  description = "Replication group id or serverless cache name the IAM tokens are signed for (REDIS_IAM_CACHE); with redis_iam_user."
  type        = string
  default     = null
}

variable "redis_iam_serverless" {
  description = "Whether redis_iam_cache is a serverless cache (REDIS_IAM_SERVERLESS)."
  type        = bool
  default     = false
}

variable "redis_iam_connect_arns" {
  description = "The cache and the user ARNs elasticache:Connect names; empty without IAM authentication."
  type        = list(string)
  default     = []
}

variable "memcached_url" {
  description = "memcaches:// URL of every Memcached node (MEMCACHED_URL); null when the cache is Redis."
  type        = string
  default     = null

  validation {
    condition     = var.memcached_url == null || startswith(coalesce(var.memcached_url, "-"), "memcaches://")
    error_message = "memcached_url must use TLS (memcaches://)."
  }
}

variable "cache_ttl_seconds" {
  description = "CACHE_TTL_SECONDS."
  type        = number
  default     = 300
}

variable "negative_cache_ttl_seconds" {
  description = "NEGATIVE_CACHE_TTL_SECONDS."
  type        = number
  default     = 30
}

variable "stale_ttl_seconds" {
  description = "STALE_TTL_SECONDS."
  type        = number
  default     = 86400
}

variable "cache_ttl_jitter_percent" {
  description = "CACHE_TTL_JITTER_PERCENT."
  type        = number
  default     = 0
}

variable "redis_timeout_ms" {
  description = "REDIS_TIMEOUT_MS, or MEMCACHED_TIMEOUT_MS when the cache is Memcached."
  type        = number
  default     = 50
}

variable "http_max_age_seconds" {
  description = "HTTP_MAX_AGE_SECONDS."
  type        = number
  default     = 60
}

variable "metrics_namespace" {
  description = "METRICS_NAMESPACE."
  type        = string
  default     = "ProductCatalog"
}

variable "kms_key_arn" {
  description = "KMS key for environment variables, logs and the failure queue."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the log groups."
  type        = number
  default     = 365
}
