# Valkey (default) or Redis OSS: a replication group with TLS and KMS at rest, optionally
# sharded and Multi-AZ; or a Serverless cache. The functions authenticate with an AUTH
# token kept in Secrets Manager (auth = "token": a URL and a secret ARN), or as an
# IAM-enabled ElastiCache user (auth = "iam": a URL, the user and the cache to sign
# tokens for, and the ARNs elasticache:Connect must name).
# Or Memcached: a cluster of nodes across AZs with TLS in transit, sharded by the client
# (the functions get every node's endpoint in one URL). Memcached on ElastiCache has no
# AUTH: only the network protects it (private subnets, port 11211 open to the functions'
# security group alone), and TLS keeps the traffic unreadable on the way.

locals {
  memcached = var.engine == "memcached"
  redis     = !local.memcached
  iam       = local.redis && var.auth == "iam"
  token     = local.redis && !local.iam
  # A user group (the required "default" user, switched off, and the functions' user)
  # for the serverless cache always, for the replication group with IAM.
  user_group      = local.redis && (var.serverless || local.iam)
  port            = local.memcached ? 11211 : 6379
  engine_version  = var.engine == "valkey" ? "8.0" : "7.1"
  parameter_group = var.cluster_mode ? "default.${var.engine == "valkey" ? "valkey8" : "redis7"}.cluster.on" : null
  # Sharded and serverless caches are clusters: the client must follow MOVED replies.
  clustered = var.serverless || var.cluster_mode
  scheme    = local.clustered ? "rediss-cluster" : "rediss"
  address = (local.memcached
    ? aws_elasticache_cluster.memcached[0].cluster_address
    : (var.serverless
      ? aws_elasticache_serverless_cache.this[0].endpoint[0].address
      : (var.cluster_mode
        ? aws_elasticache_replication_group.this[0].configuration_endpoint_address
  : aws_elasticache_replication_group.this[0].primary_endpoint_address)))
  # Every node's endpoint, in node order: the client shards keys over them (rendezvous
  # hashing). ElastiCache Auto Discovery (the configuration endpoint's node list) is not
  # used: adding or removing nodes changes this URL, and applying updates the functions.
  memcached_nodes = local.memcached ? [for node in aws_elasticache_cluster.memcached[0].cache_nodes : "${node.address}:${node.port}"] : []
  # With the token, the serverless cache authenticates the ACL user "app" and the
  # replication group the default user; with IAM the user is not in the URL.
  user              = var.serverless && local.token ? "app@" : ""
  app_access_string = "on ~product:* -@all +get +set +del +eval +evalsha +ping +info +client|id +cluster|slots +cluster|shards +cluster|info"
}

################################################################################
# AUTH token, kept in Secrets Manager (the functions read it at start-up)
################################################################################

resource "random_password" "auth" {
  count = local.token ? 1 : 0

  length           = 48
  special          = true
  override_special = "!&#$^<>-"
}

resource "aws_secretsmanager_secret" "auth" {
  count = local.token ? 1 : 0
  #checkov:skip=CKV2_AWS_57:Rotating the token needs ElastiCache's two-token ROTATE flow in step with the functions; rotate by replacing random_password.auth (README: Rotating the AUTH token).
  name_prefix             = "${var.name}-cache-auth-"
  description             = "AUTH token of the ${var.name} cache"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "auth" {
  count = local.token ? 1 : 0

  secret_id     = aws_secretsmanager_secret.auth[0].id
  secret_string = random_password.auth[0].result

  # A new token reaches the secret only once the cache takes it: in the other order a
  # function started during the cache's minutes of "modifying" would read a token the
  # cache still refuses.
  depends_on = [aws_elasticache_replication_group.this, aws_elasticache_user.app]
}

# These became conditional (no AUTH and no slow log for Memcached): the same objects
# under their new addresses, so an existing Redis deployment keeps its token and log.
moved {
  from = random_password.auth
  to   = random_password.auth[0]
}

moved {
  from = aws_secretsmanager_secret.auth
  to   = aws_secretsmanager_secret.auth[0]
}

moved {
  from = aws_secretsmanager_secret_version.auth
  to   = aws_secretsmanager_secret_version.auth[0]
}

moved {
  from = aws_cloudwatch_log_group.slow_log
  to   = aws_cloudwatch_log_group.slow_log[0]
}

################################################################################
# Replication group
################################################################################

resource "aws_elasticache_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_cloudwatch_log_group" "slow_log" {
  count = local.redis ? 1 : 0

  name              = "/elasticache/${var.name}/slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# How the replication group authenticates. Switching it replaces the group, the one path
# that works with every provider version versions.tf admits: in place, ElastiCache takes
# a user group beside a token only with the DELETE strategy, which providers before
# 6.31.0 do not send with it, and going back adds the token with ElastiCache's default
# strategy (ROTATE) where SET is needed to require it. A new group has the new mode from
# its start. The cost: no cache while the old group is deleted and the new one created
# (the functions read from the table, BYPASS), and a cold cache after.
resource "terraform_data" "auth_mode" {
  count = local.redis && !var.serverless ? 1 : 0

  input = var.auth
}

resource "aws_elasticache_replication_group" "this" {
  #checkov:skip=CKV_AWS_134:A cache rebuilt from DynamoDB needs no backups.
  count = local.redis && !var.serverless ? 1 : 0

  replication_group_id       = var.name
  description                = "${var.name} product cache"
  engine                     = var.engine
  engine_version             = local.engine_version
  node_type                  = var.node_type
  port                       = local.port
  parameter_group_name       = local.parameter_group
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [var.security_group_id]
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  # A new token is added with ElastiCache's default strategy, ROTATE: the old one keeps
  # working beside it (README: Rotating the AUTH token). Not set here: setting
  # auth_token_update_strategy would send the token again to a group deployed without it.
  # With IAM there is no token: the user group's users authenticate instead.
  auth_token                 = local.token ? random_password.auth[0].result : null
  user_group_ids             = local.iam ? [aws_elasticache_user_group.this[0].user_group_id] : null
  auto_minor_version_upgrade = true
  snapshot_retention_limit   = 0

  automatic_failover_enabled = var.multi_az || var.cluster_mode
  multi_az_enabled           = var.multi_az
  num_cache_clusters         = var.cluster_mode ? null : 1 + var.replicas_per_shard
  num_node_groups            = var.cluster_mode ? var.shards : null
  replicas_per_node_group    = var.cluster_mode ? var.replicas_per_shard : null

  lifecycle {
    replace_triggered_by = [terraform_data.auth_mode]
  }

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.slow_log[0].name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }
}

################################################################################
# ACL users (the default user is switched off): the serverless cache's, and the
# replication group's with IAM
################################################################################

resource "random_password" "default_user" {
  count = local.user_group ? 1 : 0

  length  = 48
  special = false
}

resource "aws_elasticache_user" "default" {
  count = local.user_group ? 1 : 0

  user_id       = "${var.name}-default"
  user_name     = "default"
  engine        = var.engine
  access_string = "off -@all"

  authentication_mode {
    type      = "password"
    passwords = [random_password.default_user[0].result]
  }
}

resource "aws_elasticache_user" "app" {
  count = local.token && var.serverless ? 1 : 0

  user_id = "${var.name}-app"
  # Only product keys, and only the commands the functions send (tests/integration
  # runs the read path and the invalidator as a redis-server ACL user with exactly this
  # string): no FLUSHALL, CONFIG, KEYS or SCAN for a leaked token.
  user_name     = "app"
  engine        = var.engine
  access_string = local.app_access_string

  authentication_mode {
    type      = "password"
    passwords = [random_password.auth[0].result]
  }
}

# The functions' user with IAM authentication: the same ACL as "app", no password. Its
# name must be its id, and both are what the functions send (REDIS_IAM_USER). A user id
# of its own, so that switching auth creates it beside "app" instead of in its place.
resource "aws_elasticache_user" "iam" {
  count = local.iam ? 1 : 0

  user_id       = "${var.name}-iam"
  user_name     = "${var.name}-iam"
  engine        = var.engine
  access_string = local.app_access_string

  authentication_mode {
    type = "iam"
  }
}

resource "aws_elasticache_user_group" "this" {
  count = local.user_group ? 1 : 0

  user_group_id = "${var.name}-users"
  engine        = var.engine
  user_ids = [
    aws_elasticache_user.default[0].user_id,
    local.iam ? aws_elasticache_user.iam[0].user_id : aws_elasticache_user.app[0].user_id,
  ]
}

resource "aws_elasticache_serverless_cache" "this" {
  count = local.redis && var.serverless ? 1 : 0

  name                 = var.name
  engine               = var.engine
  major_engine_version = var.engine == "valkey" ? "8" : "7"
  kms_key_id           = var.kms_key_arn
  security_group_ids   = [var.security_group_id]
  subnet_ids           = var.subnet_ids
  user_group_id        = aws_elasticache_user_group.this[0].user_group_id
}

################################################################################
# Memcached cluster (engine = "memcached")
################################################################################

resource "aws_elasticache_cluster" "memcached" {
  count = local.memcached ? 1 : 0

  cluster_id           = var.name
  engine               = "memcached"
  engine_version       = "1.6.22"
  node_type            = var.node_type
  num_cache_nodes      = var.memcached_nodes
  parameter_group_name = "default.memcached1.6"
  port                 = local.port
  subnet_group_name    = aws_elasticache_subnet_group.this.name
  security_group_ids   = [var.security_group_id]
  # Nodes spread over the subnets' Availability Zones: losing one AZ loses only its
  # nodes' keys, which the functions then read from the table (BYPASS) and refill.
  az_mode = "cross-az"
  # TLS in transit (memcached 1.6.12 or later, in a VPC); the functions use memcaches://.
  transit_encryption_enabled = true
}
