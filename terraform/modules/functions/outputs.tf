output "product_api_function_name" {
  description = "Name of the product-api function."
  value       = aws_lambda_function.product_api.function_name
}

output "product_api_invoke_arn" {
  description = "Invoke ARN of product-api, for API Gateway."
  value       = aws_lambda_function.product_api.invoke_arn
}

output "cache_invalidator_function_name" {
  description = "Name of the cache-invalidator function."
  value       = aws_lambda_function.cache_invalidator.function_name
}

output "stream_failures_queue_name" {
  description = "Name of the queue holding stream batches that could not be applied."
  value       = aws_sqs_queue.stream_failures.name
}

output "stream_failures_queue_url" {
  description = "Queue holding stream batches that could not be applied."
  value       = aws_sqs_queue.stream_failures.url
}
