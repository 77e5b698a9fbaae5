# Read from the same terraform/env/<environment>.tfvars as the stack (make bootstrap
# passes it); the stack's other settings there are not declared here, and Terraform
# only warns about them.

variable "name" {
  description = "Prefix of every resource name; the same as the stack's."
  type        = string
  default     = "product-catalog"

  validation {
    # ElastiCache ids (the stack's cache is named after it) begin with a letter and have
    # no "--" and no trailing "-".
    condition     = length(var.name) >= 3 && length(var.name) <= 31 && can(regex("^[a-z]([a-z0-9]|-[a-z0-9])*$", var.name))
    error_message = "name must be 3 to 31 lowercase letters, digits or single dashes, starting with a letter and not ending with a dash."
  }
}

variable "aws_region" {
  description = "Region of the state bucket and of the stack."
  type        = string
  default     = "eu-west-1"
}

variable "environment" {
  description = "Environment name (make passes ENV): the state key is <name>/<environment>.tfstate."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,19}$", var.environment))
    error_message = "environment must be 1 to 20 lowercase letters, digits or dashes."
  }
}

variable "manage_api_gateway_logging" {
  description = "Create the role API Gateway writes logs with; the stack points the account's setting (one per account and region) at it. Set false, here and in the stack, if the account already has one."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
