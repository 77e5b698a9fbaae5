output "policy_arn" {
  description = "ARN of the catalog CLI's policy."
  value       = aws_iam_policy.operator.arn
}
