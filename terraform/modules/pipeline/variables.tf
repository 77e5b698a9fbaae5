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
  description = "CodeStar connection provider: GitHub, GitHubEnterpriseServer, GitLab or Bitbucket."
  type        = string
  default     = "GitHub"
}

variable "state_bucket" {
  description = "Bucket of the Terraform state backend; plan and apply read and write it."
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
