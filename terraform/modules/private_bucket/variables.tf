variable "name_prefix" {
  description = "Prefix of the generated bucket name (S3 takes at most 37 characters)."
  type        = string

  validation {
    condition     = length(var.name_prefix) <= 37
    error_message = "name_prefix must be at most 37 characters."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the objects."
  type        = string
}

variable "noncurrent_days" {
  description = "Days an object's older versions are kept."
  type        = number
}

variable "expire_days" {
  description = "Days after which current objects expire (0: never)."
  type        = number
  default     = 0
}

variable "force_destroy" {
  description = "Let terraform destroy the bucket with objects (and their versions) in it."
  type        = bool
  default     = false
}
