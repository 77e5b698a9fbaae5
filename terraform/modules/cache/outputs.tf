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

output "metric_dimensions" {
  description = "One {name, value} per cache node (AWS/ElastiCache publishes per node), or the serverless cache's clusterId."
  value = (var.serverless
    ? [{ name = "clusterId", value = var.name }]
  : [for id in sort(aws_elasticache_replication_group.this[0].member_clusters) : { name = "CacheClusterId", value = id }])
}
