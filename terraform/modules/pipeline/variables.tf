variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "repository_id" {
  description = "Source repository, owner/name."
  type        = string
}

variable "repository_branch" {
  description = "Branch to build."
  type        = string
  default     = "main"
}

variable "source_provider" {
  description = "CodeStar connection provider: GitHub, GitLab or Bitbucket."
  type        = string
  default     = "GitHub"
}

variable "environment" {
  description = "Environment the pipeline plans and applies (terraform/env/<environment>.tfvars and .s3.tfbackend)."
  type        = string
}

variable "state_bucket" {
  description = "Bucket of the Terraform state backend."
  type        = string
}

variable "state_key" {
  description = "Key of the state object; the build role may write only its lock file."
  type        = string
}

variable "state_kms_key_arn" {
  description = "KMS key of the state bucket."
  type        = string
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary (made by make bootstrap) of every role here."
  type        = string
}

variable "plan_buildspec" {
  description = "Contents of buildspec-plan.yml, inlined so no earlier stage can replace it."
  type        = string
}

variable "apply_buildspec" {
  description = "Contents of buildspec-apply.yml, inlined so no earlier stage can replace it."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the artifacts and build logs."
  type        = string
}

variable "build_image" {
  description = "CodeBuild image (Amazon Linux 2023 standard image)."
  type        = string
  default     = "aws/codebuild/amazonlinux-x86_64-standard:5.0"
}
