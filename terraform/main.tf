# Product-catalog read API: API Gateway REST -> product-api Lambda -> ElastiCache, with
# DynamoDB behind it and a stream-fed cache-invalidator. See README.md.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region
  # The Amazon Trust Services roots sign the endpoints of the aws partition; elsewhere
  # (China, GovCloud) the runtime's bundle, unless the tfvars say otherwise.
  trusted_roots = coalesce(var.trusted_roots, local.partition == "aws" ? "amazon" : "system")
}

# Made by `make bootstrap` (terraform/bootstrap): every role of the stack carries it.
# Read here so that a plan without a bootstrap stops at once, naming it. By ARN, not by
# name: a lookup by name lists every policy (iam:ListPolicies on "*"), which the
# boundary itself denies to the pipeline's roles.
data "aws_iam_policy" "boundary" {
  arn = "arn:${local.partition}:iam::${local.account_id}:policy/${var.name}-boundary"
}

################################################################################
# Encryption key shared by the table, logs, secret, cache, queues and topic
################################################################################

resource "aws_kms_key" "this" {
  description             = "${var.name}: data, logs, secrets and messages"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:A key policy's only resource is the key itself, written "*".
  #checkov:skip=CKV_AWS_356:A key policy's only resource is the key itself, written "*".
  #checkov:skip=CKV_AWS_109:The account root must administer its key (AWS's default key policy); IAM policies then grant use.
  statement {
    sid       = "AccountAdministersTheKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncryptsOurLogGroups"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    # Only for this account's alarms (confused-deputy protection); CloudWatch sends both
    # keys when it publishes to an encrypted topic (AWS's Modern Data Architecture
    # Accelerator grants it the same way). README: check with set-alarm-state.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:*"]
    }
  }
}

################################################################################
# Modules
################################################################################

module "network" {
  source = "./modules/network"

  name                        = var.name
  vpc_cidr                    = var.vpc_cidr
  enable_nat_gateway          = var.enable_nat_gateway
  endpoint_security_group_ids = [module.security_groups.endpoints_security_group_id]
  kms_key_arn                 = aws_kms_key.this.arn
  log_retention_days          = var.log_retention_days
  permissions_boundary_arn    = data.aws_iam_policy.boundary.arn
}

module "security_groups" {
  source = "./modules/security_groups"

  name                    = var.name
  vpc_id                  = module.network.vpc_id
  cache_port              = module.cache.port
  dynamodb_prefix_list_id = module.network.dynamodb_prefix_list_id
  allow_internet_egress   = var.enable_nat_gateway
}

module "data" {
  source = "./modules/data"

  table_name          = var.table_name
  kms_key_arn         = aws_kms_key.this.arn
  deletion_protection = var.table_deletion_protection
}

module "cache" {
  source = "./modules/cache"

  name               = var.name
  engine             = var.cache_engine
  auth               = var.cache_auth
  memcached_nodes    = var.cache_memcached_nodes
  serverless         = var.cache_serverless
  node_type          = var.cache_node_type
  cluster_mode       = var.cache_cluster_mode
  shards             = var.cache_shards
  replicas_per_shard = var.cache_replicas_per_shard
  multi_az           = var.cache_multi_az
  subnet_ids         = module.network.private_subnet_ids
  security_group_id  = module.security_groups.cache_security_group_id
  kms_key_arn        = aws_kms_key.this.arn
  log_retention_days = var.log_retention_days
}

module "functions" {
  source = "./modules/functions"

  name                             = var.name
  architecture                     = var.lambda_architecture
  memory_mb                        = var.lambda_memory_mb
  product_api_zip                  = var.product_api_zip
  cache_invalidator_zip            = var.cache_invalidator_zip
  trusted_roots                    = local.trusted_roots
  product_api_reserved_concurrency = var.product_api_reserved_concurrency
  permissions_boundary_arn         = data.aws_iam_policy.boundary.arn
  subnet_ids                       = module.network.private_subnet_ids
  security_group_id                = module.security_groups.lambda_security_group_id
  table_name                       = module.data.table_name
  table_arn                        = module.data.table_arn
  table_stream_arn                 = module.data.stream_arn
  redis_url                        = module.cache.redis_url
  redis_auth_secret_arn            = module.cache.auth_secret_arn
  redis_iam_user                   = module.cache.iam_user_id
  redis_iam_cache                  = module.cache.iam_cache_name
  redis_iam_serverless             = var.cache_serverless
  redis_iam_connect_arns           = module.cache.iam_connect_arns
  memcached_url                    = module.cache.memcached_url
  cache_ttl_seconds                = var.cache_ttl_seconds
  negative_cache_ttl_seconds       = var.negative_cache_ttl_seconds
  stale_ttl_seconds                = var.stale_ttl_seconds
  cache_ttl_jitter_percent         = var.cache_ttl_jitter_percent
  redis_timeout_ms                 = var.redis_timeout_ms
  http_max_age_seconds             = var.http_max_age_seconds
  metrics_namespace                = var.metrics_namespace
  kms_key_arn                      = aws_kms_key.this.arn
  log_retention_days               = var.log_retention_days
}

module "operator" {
  source = "./modules/operator"

  name                     = var.name
  region                   = local.region
  table_arn                = module.data.table_arn
  kms_key_arn              = aws_kms_key.this.arn
  permissions_boundary_arn = data.aws_iam_policy.boundary.arn
  account_root_arn         = "arn:${local.partition}:iam::${local.account_id}:root"
  principal_arns           = var.operator_principal_arns
}

module "api" {
  source = "./modules/api"

  name                = var.name
  stage_name          = var.api_stage_name
  function_name       = module.functions.product_api_function_name
  function_invoke_arn = module.functions.product_api_invoke_arn
  throttle_rate       = var.api_throttle_rate
  throttle_burst      = var.api_throttle_burst
  kms_key_arn         = aws_kms_key.this.arn
  log_retention_days  = var.log_retention_days

  manage_account_logging_role = var.manage_api_gateway_logging
  account_logging_role_name   = "${var.name}-apigw-logging"
}

module "monitoring" {
  source = "./modules/monitoring"

  name                       = var.name
  metrics_namespace          = var.metrics_namespace
  api_name                   = module.api.rest_api_name
  api_stage_name             = module.api.stage_name
  product_api_function_name  = module.functions.product_api_function_name
  invalidator_function_name  = module.functions.cache_invalidator_function_name
  stream_failures_queue_name = module.functions.stream_failures_queue_name
  table_name                 = module.data.table_name
  cache_serverless           = var.cache_serverless
  cache_engine               = var.cache_engine
  cache_metric_dimensions    = module.cache.metric_dimensions
  kms_key_arn                = aws_kms_key.this.arn
  alarm_email                = var.alarm_email
  min_hit_ratio              = var.min_hit_ratio
}

module "pipeline" {
  source = "./modules/pipeline"
  count  = var.enable_pipeline ? 1 : 0

  name                     = var.name
  environment              = var.environment
  repository_id            = var.repository_id
  repository_branch        = var.repository_branch
  source_provider          = var.source_provider
  state_bucket             = var.state_bucket
  state_key                = var.state_key
  state_kms_key_arn        = var.state_kms_key_arn
  kms_key_arn              = aws_kms_key.this.arn
  permissions_boundary_arn = data.aws_iam_policy.boundary.arn
  plan_buildspec           = file("${path.root}/../buildspec-plan.yml")
  apply_buildspec          = file("${path.root}/../buildspec-apply.yml")
}
