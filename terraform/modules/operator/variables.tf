variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "region" {
  description = "Region of the stack (the kms:ViaService condition names its endpoints)."
  type        = string
}

variable "table_arn" {
  description = "ARN of the products table."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the table and the AUTH secret."
  type        = string
}

variable "redis_auth_secret_arn" {
  description = "Secret holding the Redis AUTH token; null with IAM authentication or when the cache is Memcached."
  type        = string
  default     = null
}

variable "redis_iam_connect_arns" {
  description = "The cache and the user ARNs elasticache:Connect names; empty without IAM authentication."
  type        = list(string)
  default     = []
}
