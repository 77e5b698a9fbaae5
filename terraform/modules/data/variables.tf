variable "table_name" {
  description = "Name of the products table."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for server-side encryption."
  type        = string
}

variable "deletion_protection" {
  description = "Protect the table from deletion."
  type        = bool
  default     = true
}
