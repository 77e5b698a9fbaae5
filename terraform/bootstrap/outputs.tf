output "state_bucket" {
  description = "S3 bucket of the stack's Terraform state."
  value       = module.state.id
}

output "state_key" {
  description = "Key of the stack's state object in the bucket."
  value       = local.state_key
}

output "state_kms_key_arn" {
  description = "KMS key that encrypts the state."
  value       = aws_kms_key.state.arn
}

output "permissions_boundary_arn" {
  description = "Permissions boundary every role of the stack carries."
  value       = aws_iam_policy.boundary.arn
}

output "backend_config" {
  description = "Contents of terraform/env/<environment>.s3.tfbackend, which make bootstrap writes and both make and the pipeline pass to terraform init."
  value       = <<-EOT
    # Written by make bootstrap: the stack's remote state. Commit this file; make and the
    # pipeline both run `terraform init -backend-config=env/${var.environment}.s3.tfbackend`.
    bucket       = "${module.state.id}"
    key          = "${local.state_key}"
    region       = "${var.aws_region}"
    encrypt      = true
    kms_key_id   = "${aws_kms_key.state.arn}"
    use_lockfile = true
  EOT
}
