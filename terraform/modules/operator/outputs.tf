output "role_arn" {
  description = "ARN of the role the catalog CLI's operators assume."
  value       = aws_iam_role.operator.arn
}
