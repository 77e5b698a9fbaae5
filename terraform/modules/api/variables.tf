variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "stage_name" {
  description = "Stage name (part of the invoke URL)."
  type        = string
  default     = "prod"
}

variable "function_name" {
  description = "Name of the product-api function."
  type        = string
}

variable "function_invoke_arn" {
  description = "Invoke ARN of the product-api function."
  type        = string
}

variable "throttle_rate" {
  description = "Steady-state requests per second."
  type        = number
  default     = 1000
}

variable "throttle_burst" {
  description = "Burst of requests."
  type        = number
  default     = 2000
}

variable "kms_key_arn" {
  description = "KMS key of the access-log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the access-log group."
  type        = number
  default     = 365
}

variable "manage_account_logging_role" {
  description = "make bootstrap set the account-wide API Gateway logging setting (one per account and region) to account_logging_role_name, and the stage waits for that role; false if the account had its own."
  type        = bool
}

variable "account_logging_role_name" {
  description = "Name of the role API Gateway writes logs with (make bootstrap creates it)."
  type        = string
}
