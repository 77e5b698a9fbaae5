variable "name" {
  description = "Prefix for resource names (and the replication group id)."
  type        = string
}

variable "engine" {
  description = "valkey, redis (Redis OSS) or memcached."
  type        = string
  default     = "valkey"

  validation {
    condition     = contains(["valkey", "redis", "memcached"], var.engine)
    error_message = "engine must be valkey, redis or memcached."
  }
}

variable "memcached_nodes" {
  description = "Number of Memcached nodes (engine memcached), spread across Availability Zones."
  type        = number
  default     = 2

  validation {
    condition     = var.memcached_nodes >= 2 && var.memcached_nodes <= 10
    error_message = "memcached_nodes must be from 2 (nodes in more than one AZ) to 10 (the most one CloudWatch alarm can watch)."
  }
}

variable "auth" {
  description = "How the functions authenticate to Valkey or Redis OSS: token (an AUTH token in Secrets Manager) or iam (an IAM-enabled user, tokens signed by the functions). Ignored for Memcached."
  type        = string
  default     = "token"

  validation {
    condition     = contains(["token", "iam"], var.auth)
    error_message = "auth must be token or iam."
  }
}

variable "serverless" {
  description = "Create an ElastiCache Serverless cache instead of a replication group."
  type        = bool
  default     = false
}

variable "node_type" {
  description = "Node type of the replication group."
  type        = string
  default     = "cache.t4g.micro"
}

variable "cluster_mode" {
  description = "Shard the replication group (cluster mode enabled)."
  type        = bool
  default     = false
}

variable "shards" {
  description = "Number of shards in cluster mode."
  type        = number
  default     = 2
}

variable "replicas_per_shard" {
  description = "Replicas per shard."
  type        = number
  default     = 0
}

variable "multi_az" {
  description = "Multi-AZ with automatic failover (needs replicas)."
  type        = bool
  default     = false

  validation {
    condition     = var.multi_az == false || var.replicas_per_shard >= 1
    error_message = "multi_az needs replicas_per_shard >= 1."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the cache."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the cache."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for data at rest, the AUTH secret and the slow log."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the slow-log group."
  type        = number
  default     = 365
}
