variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
}

variable "enable_nat_gateway" {
  description = "Add two public subnets, an internet gateway and one NAT gateway."
  type        = bool
  default     = false
}

variable "endpoint_security_group_ids" {
  description = "Security groups of the interface endpoints (Secrets Manager)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for the flow-log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the flow-log group."
  type        = number
  default     = 365
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of the flow-log role."
  type        = string
}
