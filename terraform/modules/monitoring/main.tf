# Dashboard and alarms. The service's own metrics are named here exactly as
# src/metrics.rs emits them (tests/terraform.rs keeps the two in step).

data "aws_region" "current" {}

locals {
  region = data.aws_region.current.region

  # Emitted by product-api (src/metrics.rs): namespace var.metrics_namespace, one dimension.
  dimension_name  = "Service"
  dimension_value = "product-api"
  # Emitted by cache-invalidator (src/metrics.rs), same namespace, its own dimension value.
  invalidator_dimension_value = "cache-invalidator"
  invalidator_metric = {
    unappliable = "UnappliableRecords"
  }
  metric = {
    hits         = "CacheHits"
    misses       = "CacheMisses"
    cache_errors = "CacheErrors"
    store_errors = "StoreErrors"
    not_found    = "NotFound"
    latency      = "Latency"
    stale_served = "StaleServed"
  }

  app = [var.metrics_namespace]
  dim = [local.dimension_name, local.dimension_value]
  # AWS/ElastiCache publishes per node: every node of every shard goes on the dashboard.
  # Serverless caches publish no DatabaseMemoryUsagePercentage or EngineCPUUtilization.
  # https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/serverless-metrics-events-redis.html
  # Memcached nodes publish host metrics (CPUUtilization: memcached is multi-threaded,
  # there is no EngineCPUUtilization) and memcached's own counters, per CacheNodeId.
  memcached = var.cache_engine == "memcached"
  redis_metrics = (var.cache_serverless
    ? { ElastiCacheProcessingUnits = "Sum", BytesUsedForCache = "Average", Evictions = "Sum", CurrConnections = "Maximum", ThrottledCmds = "Sum" }
  : { EngineCPUUtilization = "Average", DatabaseMemoryUsagePercentage = "Average", Evictions = "Sum", CurrConnections = "Maximum" })
  memcached_metrics = { CPUUtilization = "Average", SwapUsage = "Maximum", BytesUsedForCacheItems = "Average", Evictions = "Sum", CurrConnections = "Maximum", GetHits = "Sum", GetMisses = "Sum" }
  cache_metrics     = local.memcached ? local.memcached_metrics : local.redis_metrics
  cache_widget_metrics = flatten([
    for metric, stat in local.cache_metrics : [
      for dim in var.cache_metric_dimensions : concat(["AWS/ElastiCache", metric], flatten([for name, value in dim : [name, value]]), [{ stat = stat }])
    ]
  ])
  # An alarm's metric math takes at most 10 metrics; evictions happen on primaries,
  # which sort first in each shard (<group>-0001-001, <group>-0002-001, ...).
  eviction_dimensions = slice(var.cache_metric_dimensions, 0, min(10, length(var.cache_metric_dimensions)))
  api                 = ["ApiName", var.api_name, "Stage", var.api_stage_name]
  lambda              = ["FunctionName", var.product_api_function_name]

  widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title  = "Cache hits and misses"
        region = local.region
        stat   = "Sum"
        period = 60
        metrics = [
          concat(local.app, [local.metric.hits], local.dim, [{ id = "hits" }]),
          concat(local.app, [local.metric.misses], local.dim, [{ id = "misses" }]),
          concat(local.app, [local.metric.cache_errors], local.dim),
          concat(local.app, [local.metric.store_errors], local.dim),
          concat(local.app, [local.metric.not_found], local.dim),
          # Last-known-good copies served while the table could not answer.
          concat(local.app, [local.metric.stale_served], local.dim),
        ]
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title  = "Hit ratio"
        region = local.region
        period = 60
        yAxis  = { left = { min = 0, max = 1 } }
        metrics = [
          [{ expression = "hits / (hits + misses)", label = "hit ratio", id = "ratio" }],
          concat(local.app, [local.metric.hits], local.dim, [{ id = "hits", stat = "Sum", visible = false }]),
          concat(local.app, [local.metric.misses], local.dim, [{ id = "misses", stat = "Sum", visible = false }]),
        ]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 12, height = 6
      properties = {
        title  = "Service latency (ms)"
        region = local.region
        period = 60
        metrics = [
          concat(local.app, [local.metric.latency], local.dim, [{ stat = "p50" }]),
          concat(local.app, [local.metric.latency], local.dim, [{ stat = "p99" }]),
        ]
      }
    },
    {
      type = "metric", x = 12, y = 6, width = 12, height = 6
      properties = {
        title  = "product-api Lambda"
        region = local.region
        period = 60
        metrics = [
          concat(["AWS/Lambda", "Errors"], local.lambda, [{ stat = "Sum" }]),
          concat(["AWS/Lambda", "Throttles"], local.lambda, [{ stat = "Sum" }]),
          concat(["AWS/Lambda", "Duration"], local.lambda, [{ stat = "p50" }]),
          concat(["AWS/Lambda", "Duration"], local.lambda, [{ stat = "p99" }]),
          concat(["AWS/Lambda", "ConcurrentExecutions"], local.lambda, [{ stat = "Maximum" }]),
        ]
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 12, height = 6
      properties = {
        title  = "API Gateway"
        region = local.region
        period = 60
        metrics = [
          concat(["AWS/ApiGateway", "Count"], local.api, [{ stat = "Sum" }]),
          concat(["AWS/ApiGateway", "4XXError"], local.api, [{ stat = "Sum" }]),
          concat(["AWS/ApiGateway", "5XXError"], local.api, [{ stat = "Sum" }]),
          concat(["AWS/ApiGateway", "Latency"], local.api, [{ stat = "p99" }]),
        ]
      }
    },
    {
      type = "metric", x = 12, y = 12, width = 12, height = 6
      properties = {
        title   = local.memcached ? "ElastiCache (Memcached nodes)" : "ElastiCache"
        region  = local.region
        period  = 60
        metrics = local.cache_widget_metrics
      }
    },
    {
      type = "metric", x = 0, y = 18, width = 12, height = 6
      properties = {
        title  = "DynamoDB"
        region = local.region
        period = 60
        metrics = [
          ["AWS/DynamoDB", "ConsumedReadCapacityUnits", "TableName", var.table_name, { stat = "Sum" }],
          ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", var.table_name, { stat = "Sum" }],
          ["AWS/DynamoDB", "ReadThrottleEvents", "TableName", var.table_name, { stat = "Sum" }],
          ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", var.table_name, { stat = "Sum" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 18, width = 12, height = 6
      properties = {
        title  = "Stream invalidation"
        region = local.region
        period = 60
        metrics = [
          ["AWS/Lambda", "IteratorAge", "FunctionName", var.invalidator_function_name, { stat = "Maximum" }],
          ["AWS/Lambda", "Errors", "FunctionName", var.invalidator_function_name, { stat = "Sum" }],
          [var.metrics_namespace, local.invalidator_metric.unappliable, local.dimension_name, local.invalidator_dimension_value, { stat = "Sum" }],
        ]
      }
    },
  ]
}

################################################################################
# Dashboard
################################################################################

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.widgets })
}

################################################################################
# Alarm topic
################################################################################

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

################################################################################
# Alarms
################################################################################

resource "aws_cloudwatch_metric_alarm" "api_5xx_rate" {
  alarm_name          = "${var.name}-api-5xx-rate"
  alarm_description   = "More than ${var.max_5xx_rate * 100}% of API answers are 5xx."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.max_5xx_rate
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id = "rate"
    # Documented metric-math form; no data (no requests) is not a breach.
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html
    expression  = "IF(requests > 0, errors / requests, 0)"
    label       = "5xx rate"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "5XXError"
      period      = 60
      stat        = "Sum"
      dimensions  = { ApiName = var.api_name, Stage = var.api_stage_name }
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "Count"
      period      = 60
      stat        = "Sum"
      dimensions  = { ApiName = var.api_name, Stage = var.api_stage_name }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = toset([var.product_api_function_name, var.invalidator_function_name])

  alarm_name          = "${each.key}-errors"
  alarm_description   = "${each.key} reported invocation errors."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.key }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "low_hit_ratio" {
  alarm_name          = "${var.name}-low-hit-ratio"
  alarm_description   = "The cache answers fewer than ${var.min_hit_ratio * 100}% of product requests."
  comparison_operator = "LessThanThreshold"
  threshold           = var.min_hit_ratio
  evaluation_periods  = 15
  datapoints_to_alarm = 10
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "ratio"
    expression  = "hits / (hits + misses)"
    label       = "hit ratio"
    return_data = true
  }

  metric_query {
    id = "hits"
    metric {
      namespace   = var.metrics_namespace
      metric_name = local.metric.hits
      period      = 60
      stat        = "Sum"
      dimensions  = { (local.dimension_name) = local.dimension_value }
    }
  }

  metric_query {
    id = "misses"
    metric {
      namespace   = var.metrics_namespace
      metric_name = local.metric.misses
      period      = 60
      stat        = "Sum"
      dimensions  = { (local.dimension_name) = local.dimension_value }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "cache_evictions" {
  alarm_name          = "${var.name}-cache-evictions"
  alarm_description   = "The cache is evicting keys: it is too small for the catalog."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "evictions"
    expression  = "SUM([${join(", ", [for i, _ in local.eviction_dimensions : "node${i}"])}])"
    label       = "evictions, all nodes"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.eviction_dimensions

    content {
      id = "node${metric_query.key}"
      metric {
        namespace   = "AWS/ElastiCache"
        metric_name = "Evictions"
        period      = 300
        stat        = "Sum"
        dimensions  = metric_query.value
      }
    }
  }
}

# Memcached only: a node near its CPU limit adds latency to every key it holds; a node
# that swaps serves from disk. Either way the request path's timeout turns it into
# BYPASS for that node's keys. Metric math over every node (at most 10, like evictions: so memcached_nodes is at most 10).
resource "aws_cloudwatch_metric_alarm" "memcached" {
  for_each = local.memcached ? {
    cpu  = { metric = "CPUUtilization", stat = "Average", period = 60, threshold = 90, periods = 5, description = "A Memcached node runs above 90% CPU." }
    swap = { metric = "SwapUsage", stat = "Maximum", period = 300, threshold = 50 * 1024 * 1024, periods = 3, description = "A Memcached node swaps more than 50 MB: it is short of memory." }
  } : {}

  alarm_name          = "${var.name}-memcached-${each.key}"
  alarm_description   = each.value.description
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = min(3, each.value.periods)
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "worst"
    expression  = "MAX([${join(", ", [for i, _ in local.eviction_dimensions : "node${i}"])}])"
    label       = "${each.value.metric}, worst node"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.eviction_dimensions

    content {
      id = "node${metric_query.key}"
      metric {
        namespace   = "AWS/ElastiCache"
        metric_name = each.value.metric
        period      = each.value.period
        stat        = each.value.stat
        dimensions  = metric_query.value
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "stream_iterator_age" {
  alarm_name          = "${var.name}-stream-iterator-age"
  alarm_description   = "Stream invalidation lags more than a minute: writes take that long to show."
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = var.invalidator_function_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = 60000
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# Records the mapping gave up on (10 retries or an hour spent: the cache unreachable or
# refusing the invalidator for that long) are parked in the queue. By then the cache's
# entries have expired and been filled again from the table; what may be left is a
# product's last-known-good copy, served only while the table cannot answer, until that
# product is read again. Counted as they arrive, so each incident notifies, and the
# alarm ends 5 minutes after the last one (the messages stay 14 days, for reading).
resource "aws_cloudwatch_metric_alarm" "stream_failures" {
  alarm_name          = "${var.name}-stream-failures"
  alarm_description   = "cache-invalidator gave up on stream records and parked them in ${var.stream_failures_queue_name} (its log says why). Each message names a shard and a range of sequence numbers: within the stream's 24 hours, aws dynamodbstreams get-shard-iterator (AT_SEQUENCE_NUMBER) and get-records list the products; read each once through the API to refresh its last-known-good copy, then purge the queue."
  namespace           = "AWS/SQS"
  metric_name         = "NumberOfMessagesSent"
  dimensions          = { QueueName = var.stream_failures_queue_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# A batch the mapping could not even park (the queue refused it: permissions, its key) is
# lost, with no other trace than this count.
resource "aws_cloudwatch_metric_alarm" "stream_failures_undelivered" {
  alarm_name          = "${var.name}-stream-failures-undelivered"
  alarm_description   = "Stream records cache-invalidator gave up on could not be parked in ${var.stream_failures_queue_name} either: they are lost. Check that its role may sqs:SendMessage to the queue and use the queue's KMS key (kms:GenerateDataKey, kms:Decrypt)."
  namespace           = "AWS/Lambda"
  metric_name         = "DestinationDeliveryFailures"
  dimensions          = { FunctionName = var.invalidator_function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "unappliable_records" {
  alarm_name          = "${var.name}-unappliable-stream-records"
  alarm_description   = "cache-invalidator got stream records it cannot apply (no productId, unknown event): they are retried, then parked in the stream's failure queue."
  namespace           = var.metrics_namespace
  metric_name         = local.invalidator_metric.unappliable
  dimensions          = { (local.dimension_name) = local.invalidator_dimension_value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
