output "redis_url" {
  description = "URL of the Redis cache without its password (added at start-up from the secret); null for Memcached."
  value       = local.redis ? "${local.scheme}://${local.user}${local.address}:${local.port}" : null
}

output "memcached_url" {
  description = "memcaches:// URL listing every Memcached node; null for Redis."
  value       = local.memcached ? "memcaches://${join(",", local.memcached_nodes)}" : null
}

output "auth_secret_arn" {
  description = "Secrets Manager secret holding the Redis AUTH token; null for Memcached, which has no AUTH."
  value       = local.redis ? aws_secretsmanager_secret.auth[0].arn : null
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
