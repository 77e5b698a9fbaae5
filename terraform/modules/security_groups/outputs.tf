output "lambda_security_group_id" {
  description = "Group of the functions."
  value       = aws_security_group.lambda.id
}

output "cache_security_group_id" {
  description = "Group of the cache."
  value       = aws_security_group.cache.id
}

output "endpoints_security_group_id" {
  description = "Group of the interface endpoints."
  value       = aws_security_group.endpoints.id
}
