output "redis_url" {
  description = "URL of the Redis cache without its password (added at start-up from the secret); null for Memcached."
  value       = local.redis ? "${local.scheme}://${local.user}${local.address}:${local.port}" : null
}

output "memcached_url" {
  description = "memcaches:// URL listing every Memcached node; null for Redis."
  value       = local.memcached ? "memcaches://${join(",", local.memcached_nodes)}" : null
}

output "auth_secret_arn" {
  description = "Secrets Manager secret holding the Redis AUTH token; null with IAM authentication and for Memcached, which has no AUTH."
  value       = local.token ? aws_secretsmanager_secret.auth[0].arn : null
}

output "iam_user_id" {
  description = "The functions' IAM-enabled ElastiCache user (REDIS_IAM_USER); null unless auth is iam."
  value       = local.iam ? aws_elasticache_user.iam[0].user_id : null
}

output "iam_cache_name" {
  description = "The replication group id or serverless cache name IAM tokens are signed for (REDIS_IAM_CACHE); null unless auth is iam."
  value       = local.iam ? var.name : null
}

output "iam_connect_arns" {
  description = "The cache and the user elasticache:Connect must name; empty unless auth is iam."
  value = (local.iam
    ? [var.serverless ? aws_elasticache_serverless_cache.this[0].arn : aws_elasticache_replication_group.this[0].arn, aws_elasticache_user.iam[0].arn]
  : [])
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
  description = "One map of AWS/ElastiCache dimensions per cache node (CacheClusterId; with CacheNodeId for Memcached), or the serverless cache's clusterId."
  value = (local.memcached
    ? [for node in aws_elasticache_cluster.memcached[0].cache_nodes : { CacheClusterId = var.name, CacheNodeId = node.id }]
    : (var.serverless
      ? [{ clusterId = var.name }]
  : [for id in sort(aws_elasticache_replication_group.this[0].member_clusters) : { CacheClusterId = id }]))
}
