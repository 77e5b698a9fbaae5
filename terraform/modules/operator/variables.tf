variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "region" {
  description = "Region of the stack (the kms:ViaService condition names its endpoint)."
  type        = string
}

variable "table_arn" {
  description = "ARN of the products table."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the table."
  type        = string
}

variable "account_root_arn" {
  description = "The account's root ARN, which the role trusts (any principal of the account that an IAM policy lets call sts:AssumeRole on it)."
  type        = string
}

variable "principal_arns" {
  description = "IAM role or user ARNs of the account (wildcards allowed) that alone may assume the role; empty: any the account's IAM policies allow."
  type        = list(string)
  default     = []
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of the role (made by make bootstrap)."
  type        = string
}
