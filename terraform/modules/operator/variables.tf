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

variable "trusted_principal_arns" {
  description = "Principals that may assume the role (an account's root ARN: any principal of that account an IAM policy lets call sts:AssumeRole on it)."
  type        = list(string)

  validation {
    condition     = length(var.trusted_principal_arns) > 0
    error_message = "trusted_principal_arns needs at least one principal."
  }
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of the role (made by make bootstrap)."
  type        = string
}
