output "api_invoke_url" {
  description = "Base URL of the API: GET <this>/product/{productId}."
  value       = module.api.invoke_url
}

output "dashboard_url" {
  description = "CloudWatch dashboard of the service."
  value       = module.monitoring.dashboard_url
}

output "table_name" {
  description = "DynamoDB products table (for make seed)."
  value       = module.data.table_name
}

output "catalog_operator_role_arn" {
  description = "Role to assume to run the catalog CLI (load, get, put, delete) on the table."
  value       = module.operator.role_arn
}

output "cache_endpoint" {
  description = "ElastiCache endpoint address and port."
  value       = "${module.cache.endpoint_address}:${module.cache.port}"
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms publish to."
  value       = module.monitoring.alarm_topic_arn
}

output "pipeline_connection_arn" {
  description = "CodeStar connection to approve in the console before the pipeline can run (empty without a pipeline)."
  value       = var.enable_pipeline ? module.pipeline[0].connection_arn : ""
}

output "aws_region" {
  description = "Region of the stack (for make seed)."
  value       = var.aws_region
}
