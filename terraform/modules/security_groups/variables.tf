variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the groups."
  type        = string
}

variable "cache_port" {
  description = "Port the cache listens on."
  type        = number
  default     = 6379
}

variable "dynamodb_prefix_list_id" {
  description = "Prefix list of the DynamoDB gateway endpoint."
  type        = string
}

variable "allow_internet_egress" {
  description = "Let the functions reach any HTTPS address (only useful with a NAT gateway)."
  type        = bool
  default     = false
}
