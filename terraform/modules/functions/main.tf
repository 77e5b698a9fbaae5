# product-api (behind API Gateway) and cache-invalidator (on the table's stream), both
# the zips `make package` builds, on provided.al2023, in the VPC, with least-privilege
# roles, KMS-encrypted environments, log groups with retention and active tracing.


locals {
  product_api       = "${var.name}-product-api"
  cache_invalidator = "${var.name}-cache-invalidator"
  memcached         = var.memcached_url != null
  redis_iam         = var.redis_iam_user != null
  # What both functions read; each binary reads only its own variables. Redis comes with
  # its AUTH secret, or with the IAM-enabled user and the cache its tokens are signed
  # for; Memcached has none (ElastiCache offers no AUTH for it). The entry settings must
  # be the same in both: the invalidator rewrites what product-api fills.
  cache_environment = (local.memcached
    ? { MEMCACHED_URL = var.memcached_url }
    : (local.redis_iam
      ? { REDIS_URL = var.redis_url, REDIS_IAM_USER = var.redis_iam_user, REDIS_IAM_CACHE = var.redis_iam_cache, REDIS_IAM_SERVERLESS = tostring(var.redis_iam_serverless) }
  : { REDIS_URL = var.redis_url, REDIS_AUTH_SECRET_ARN = var.redis_auth_secret_arn }))
  # TRUSTED_ROOTS: the roots every TLS connection trusts. "amazon" (compiled into the
  # binaries): the Amazon Trust Services roots that sign Secrets Manager's, DynamoDB's
  # and ElastiCache's certificates; a cold start parses 5 roots instead of ~150.
  # Whole numbers as the binaries parse them: "%d" writes -0 as 0 (tostring keeps the
  # sign, which they refuse) and refuses a fraction at plan.
  common_environment = merge(local.cache_environment, {
    TRUSTED_ROOTS              = var.trusted_roots
    CACHE_TTL_SECONDS          = format("%d", var.cache_ttl_seconds)
    NEGATIVE_CACHE_TTL_SECONDS = format("%d", var.negative_cache_ttl_seconds)
    STALE_TTL_SECONDS          = format("%d", var.stale_ttl_seconds)
    CACHE_TTL_JITTER_PERCENT   = format("%d", var.cache_ttl_jitter_percent)
    METRICS_NAMESPACE          = var.metrics_namespace
  })
  # The request path's cache timeout; the invalidator keeps its own, longer default
  # (a slow write is better than a failed one, which blocks the shard).
  product_api_environment = merge(local.common_environment, {
    TABLE_NAME                                                      = var.table_name
    (local.memcached ? "MEMCACHED_TIMEOUT_MS" : "REDIS_TIMEOUT_MS") = format("%d", var.redis_timeout_ms)
    HTTP_MAX_AGE_SECONDS                                            = format("%d", var.http_max_age_seconds)
  })
}

################################################################################
# Shared permissions: logs, tracing, VPC network interfaces, the AUTH secret
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "common" {
  #checkov:skip=CKV_AWS_111:X-Ray segments and VPC network interfaces cannot be scoped to a resource (AWS's own AWSLambdaVPCAccessExecutionRole uses "*").
  #checkov:skip=CKV_AWS_356:X-Ray segments and VPC network interfaces cannot be scoped to a resource (AWS's own AWSLambdaVPCAccessExecutionRole uses "*").
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.product_api.arn}:*", "${aws_cloudwatch_log_group.cache_invalidator.arn}:*"]
  }

  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  statement {
    sid = "VpcNetworkInterfaces"
    actions = [
      "ec2:CreateNetworkInterface",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DeleteNetworkInterface",
      "ec2:AssignPrivateIpAddresses",
      "ec2:UnassignPrivateIpAddresses",
    ]
    resources = ["*"]
  }

  # Redis only: Memcached has no AUTH token to read.
  dynamic "statement" {
    for_each = var.redis_auth_secret_arn == null ? [] : [var.redis_auth_secret_arn]

    content {
      sid       = "ReadCacheAuthToken"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  # Redis with IAM authentication: connect as the functions' user to this cache only.
  dynamic "statement" {
    for_each = length(var.redis_iam_connect_arns) == 0 ? [] : [var.redis_iam_connect_arns]

    content {
      sid       = "ConnectToTheCacheAsItsUser"
      actions   = ["elasticache:Connect"]
      resources = statement.value
    }
  }

  statement {
    sid       = "DecryptWithTheServiceKey"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

################################################################################
# product-api
################################################################################

resource "aws_iam_role" "product_api" {
  name                 = local.product_api
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy" "product_api_common" {
  name   = "common"
  role   = aws_iam_role.product_api.id
  policy = data.aws_iam_policy_document.common.json
}

data "aws_iam_policy_document" "product_api" {
  statement {
    sid       = "ReadProducts"
    actions   = ["dynamodb:GetItem"]
    resources = [var.table_arn]
  }
}

resource "aws_iam_role_policy" "product_api" {
  name   = "read-products"
  role   = aws_iam_role.product_api.id
  policy = data.aws_iam_policy_document.product_api.json
}

resource "aws_cloudwatch_log_group" "product_api" {
  name              = "/aws/lambda/${local.product_api}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "product_api" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway; a dead-letter queue only applies to asynchronous invocations.
  #checkov:skip=CKV_AWS_272:The zip is built and deployed by this project's own pipeline; add a signing profile if your organisation signs code.
  function_name    = local.product_api
  role             = aws_iam_role.product_api.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = var.product_api_zip
  source_code_hash = filebase64sha256(var.product_api_zip)
  memory_size      = var.memory_mb
  timeout          = 10
  kms_key_arn      = var.kms_key_arn
  # Unreserved (-1) by default: AWS refuses a reservation that leaves the account fewer
  # than 100 unreserved, and new accounts may have 10 in all.
  # https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
  reserved_concurrent_executions = var.product_api_reserved_concurrency

  environment {
    variables = local.product_api_environment
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [var.security_group_id]
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.product_api.name
  }

  depends_on = [aws_iam_role_policy.product_api_common]
}

################################################################################
# cache-invalidator on the table's stream
################################################################################

resource "aws_iam_role" "cache_invalidator" {
  name                 = local.cache_invalidator
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy" "cache_invalidator_common" {
  name   = "common"
  role   = aws_iam_role.cache_invalidator.id
  policy = data.aws_iam_policy_document.common.json
}

data "aws_iam_policy_document" "cache_invalidator" {
  statement {
    sid       = "ReadTheStream"
    actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
    resources = [var.table_stream_arn]
  }

  statement {
    sid       = "ListStreams"
    actions   = ["dynamodb:ListStreams"]
    resources = ["*"]
  }

  statement {
    sid       = "ParkFailedBatches"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.stream_failures.arn]
  }

  # A producer to an SSE-KMS queue needs both: SendMessage generates a data key, and
  # decrypts it when it reuses one (SQS developer guide, "Configure KMS permissions for
  # producers"). The mapping sends with this role.
  statement {
    sid       = "EncryptParkedBatches"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "cache_invalidator" {
  name   = "read-stream"
  role   = aws_iam_role.cache_invalidator.id
  policy = data.aws_iam_policy_document.cache_invalidator.json
}

resource "aws_cloudwatch_log_group" "cache_invalidator" {
  name              = "/aws/lambda/${local.cache_invalidator}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "cache_invalidator" {
  #checkov:skip=CKV_AWS_116:Stream batches that keep failing go to the event source mapping's on-failure queue instead.
  #checkov:skip=CKV_AWS_115:The stream mapping bounds it (one batch per shard); a reservation fails on new accounts, whose quota may be 10 in all.
  #checkov:skip=CKV_AWS_272:The zip is built and deployed by this project's own pipeline; add a signing profile if your organisation signs code.
  function_name    = local.cache_invalidator
  role             = aws_iam_role.cache_invalidator.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = var.cache_invalidator_zip
  source_code_hash = filebase64sha256(var.cache_invalidator_zip)
  memory_size      = 128
  timeout          = 30
  kms_key_arn      = var.kms_key_arn
  # No reservation (see product_api): the stream mapping runs one batch per shard.

  environment {
    variables = local.common_environment
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [var.security_group_id]
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.cache_invalidator.name
  }

  depends_on = [aws_iam_role_policy.cache_invalidator_common]
}

resource "aws_sqs_queue" "stream_failures" {
  name                      = "${var.name}-stream-failures"
  kms_master_key_id         = var.kms_key_arn
  message_retention_seconds = 1209600
}

resource "aws_lambda_event_source_mapping" "stream" {
  event_source_arn                   = var.table_stream_arn
  function_name                      = aws_lambda_function.cache_invalidator.arn
  starting_position                  = "LATEST"
  batch_size                         = 100
  maximum_batching_window_in_seconds = 0
  function_response_types            = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = 10
  maximum_record_age_in_seconds      = 3600

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.stream_failures.arn
    }
  }

  depends_on = [aws_iam_role_policy.cache_invalidator]
}
