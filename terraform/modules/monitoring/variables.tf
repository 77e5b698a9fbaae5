variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "metrics_namespace" {
  description = "Namespace of the service's EMF metrics."
  type        = string
  default     = "ProductCatalog"
}

variable "api_name" {
  description = "REST API name (ApiName dimension)."
  type        = string
}

variable "api_stage_name" {
  description = "Stage name (Stage dimension)."
  type        = string
}

variable "product_api_function_name" {
  description = "Name of the product-api function."
  type        = string
}

variable "invalidator_function_name" {
  description = "Name of the cache-invalidator function."
  type        = string
}

variable "stream_failures_queue_name" {
  description = "Name of the queue where the stream's mapping parks records cache-invalidator could not apply."
  type        = string
}

variable "table_name" {
  description = "Products table name."
  type        = string
}

variable "cache_metric_dimensions" {
  description = "Dimensions selecting the cache in AWS/ElastiCache, one map of dimension name to value per node (or the serverless cache)."
  type        = list(map(string))
}

variable "cache_engine" {
  description = "valkey, redis or memcached: which AWS/ElastiCache metrics the nodes publish."
  type        = string
  default     = "valkey"
}

variable "cache_serverless" {
  description = "The cache is ElastiCache Serverless, which publishes other metrics than nodes do."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key of the alarm topic."
  type        = string
}

variable "alarm_email" {
  description = "E-mail subscribed to the alarm topic (empty: none)."
  type        = string
  default     = ""
}

variable "min_hit_ratio" {
  description = "Alarm threshold for the cache hit ratio (0 to 1)."
  type        = number
  default     = 0.8
}

variable "max_5xx_rate" {
  description = "Alarm threshold for the share of 5xx answers (0 to 1)."
  type        = number
  default     = 0.01
}
