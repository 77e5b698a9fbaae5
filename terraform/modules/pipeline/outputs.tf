output "connection_arn" {
  description = "CodeStar connection to approve in the console."
  value       = aws_codestarconnections_connection.this.arn
}

output "pipeline_name" {
  description = "Name of the pipeline."
  value       = aws_codepipeline.this.name
}

output "artifact_bucket" {
  description = "Bucket of the pipeline's artifacts."
  value       = module.artifacts.id
}
