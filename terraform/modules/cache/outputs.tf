output "redis_url" {
  description = "URL of the cache without its password (added at start-up from the secret)."
  value       = "${local.scheme}://${local.user}${local.address}:${local.port}"
}

output "auth_secret_arn" {
  description = "Secrets Manager secret holding the AUTH token."
  value       = aws_secretsmanager_secret.auth.arn
}

output "endpoint_address" {
  description = "Address of the cache endpoint."
  value       = local.address
}

output "port" {
  description = "Port of the cache."
  value       = local.port
}

output "metric_dimension" {
  description = "Dimension that selects this cache's metrics in AWS/ElastiCache."
  value = (var.serverless
    ? { name = "clusterId", value = var.name }
  : { name = "CacheClusterId", value = tolist(aws_elasticache_replication_group.this[0].member_clusters)[0] })
}
