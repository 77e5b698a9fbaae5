output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "IDs of the two private subnets."
  value       = aws_subnet.private[*].id
}

output "dynamodb_prefix_list_id" {
  description = "Prefix list of the DynamoDB gateway endpoint, for security group egress."
  value       = aws_vpc_endpoint.dynamodb.prefix_list_id
}

output "nat_gateway_ids" {
  description = "IDs of the NAT gateways (none by default)."
  value       = aws_nat_gateway.this[*].id
}
