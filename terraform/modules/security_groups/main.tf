# Three groups: the functions, the cache (reachable only from the functions) and the
# interface endpoints (reachable only from the functions). One rule resource per rule.

################################################################################
# Groups
################################################################################

resource "aws_security_group" "lambda" {
  #checkov:skip=CKV2_AWS_5:Attached in other modules (functions, cache, network), which this check does not follow.
  name        = "${var.name}-lambda"
  description = "product-api and cache-invalidator functions"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-lambda" }
}

resource "aws_security_group" "cache" {
  #checkov:skip=CKV2_AWS_5:Attached in other modules (functions, cache, network), which this check does not follow.
  name        = "${var.name}-cache"
  description = "ElastiCache: Redis port from the functions only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-cache" }
}

resource "aws_security_group" "endpoints" {
  #checkov:skip=CKV2_AWS_5:Attached in other modules (functions, cache, network), which this check does not follow.
  name        = "${var.name}-endpoints"
  description = "Interface VPC endpoints: HTTPS from the functions only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-endpoints" }
}

################################################################################
# Cache
################################################################################

resource "aws_vpc_security_group_ingress_rule" "cache_from_lambda" {
  security_group_id            = aws_security_group.cache.id
  description                  = "Cache port (Redis or Memcached) from the functions"
  ip_protocol                  = "tcp"
  from_port                    = var.cache_port
  to_port                      = var.cache_port
  referenced_security_group_id = aws_security_group.lambda.id
}

################################################################################
# Endpoints
################################################################################

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_lambda" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the functions"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.lambda.id
}

################################################################################
# Functions: out to the cache, DynamoDB and the endpoints only
################################################################################

resource "aws_vpc_security_group_egress_rule" "lambda_to_cache" {
  security_group_id            = aws_security_group.lambda.id
  description                  = "Cache (Redis or Memcached)"
  ip_protocol                  = "tcp"
  from_port                    = var.cache_port
  to_port                      = var.cache_port
  referenced_security_group_id = aws_security_group.cache.id
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_dynamodb" {
  security_group_id = aws_security_group.lambda.id
  description       = "DynamoDB through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = var.dynamodb_prefix_list_id
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_endpoints" {
  security_group_id            = aws_security_group.lambda.id
  description                  = "Secrets Manager through the interface endpoint"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_internet" {
  count = var.allow_internet_egress ? 1 : 0

  security_group_id = aws_security_group.lambda.id
  description       = "HTTPS anywhere, through the NAT gateway"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}
