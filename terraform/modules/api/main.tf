# REST API: GET and HEAD /product/{productId} -> product-api (Lambda proxy), one stage
# with JSON access logs, throttling and tracing.

locals {
  methods = toset(["GET", "HEAD"])
}

################################################################################
# API and routes
################################################################################

resource "aws_api_gateway_rest_api" "this" {
  name        = var.name
  description = "Product catalog read API"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "product" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "product"
}

resource "aws_api_gateway_resource" "product_id" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.product.id
  path_part   = "{productId}"
}

resource "aws_api_gateway_method" "product" {
  #checkov:skip=CKV_AWS_59:A public, read-only catalog: anyone may read products; abuse is bounded by stage throttling.
  #checkov:skip=CKV2_AWS_53:The id is validated by the function, which answers 400 with a JSON error; a request validator would answer in a different shape.
  for_each = local.methods

  rest_api_id   = aws_api_gateway_rest_api.this.id
  resource_id   = aws_api_gateway_resource.product_id.id
  http_method   = each.key
  authorization = "NONE"

  request_parameters = {
    "method.request.path.productId" = true
  }
}

resource "aws_api_gateway_integration" "product" {
  for_each = local.methods

  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.product_id.id
  http_method             = aws_api_gateway_method.product[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = var.function_invoke_arn
}

# A method and path no resource answers (an unknown path, or another method than GET and
# HEAD): API Gateway's own answer, a 403 "Missing Authentication Token", becomes a 404 in
# the function's JSON error shape. The function is not invoked: routing the other methods
# to it (ANY) would answer them 405, as the local server does, but make each an
# invocation, throttled per method by the stage.
resource "aws_api_gateway_gateway_response" "unknown_path" {
  rest_api_id   = aws_api_gateway_rest_api.this.id
  response_type = "MISSING_AUTHENTICATION_TOKEN"
  status_code   = "404"

  response_templates = {
    "application/json" = jsonencode({
      error     = "not_found"
      message   = "no route for this method and path"
      requestId = "$context.requestId"
    })
  }

  response_parameters = {
    "gatewayresponse.header.Cache-Control" = "'no-store'"
  }
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = var.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/*/*/product/*"
}

################################################################################
# Deployment and stage
################################################################################

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id

  # The stage serves a deployment's snapshot. With create_before_destroy, a removed
  # method, integration or gateway response is still in the new snapshot (it is deleted
  # after the new deployment is made): after removing one, apply again with
  # -replace=module.api.aws_api_gateway_deployment.this.
  triggers = {
    redeployment = sha1(jsonencode([
      aws_api_gateway_resource.product.id,
      aws_api_gateway_resource.product_id.id,
      [for method in aws_api_gateway_method.product : method.id],
      [for integration in aws_api_gateway_integration.product : integration.id],
      aws_api_gateway_gateway_response.unknown_path,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/apigateway/${var.name}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_120:Redis is the cache; API Gateway caching would also hide stream invalidations for its TTL.
  #checkov:skip=CKV2_AWS_29:Attach a WAF web ACL of your organisation's if you need one; throttling bounds abuse here.
  #checkov:skip=CKV2_AWS_51:A public API: clients do not present certificates.
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  xray_tracing_enabled = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId        = "$context.requestId"
      ip               = "$context.identity.sourceIp"
      requestTime      = "$context.requestTime"
      httpMethod       = "$context.httpMethod"
      path             = "$context.path"
      status           = "$context.status"
      responseLength   = "$context.responseLength"
      latencyMs        = "$context.responseLatency"
      integrationMs    = "$context.integration.latency"
      integrationError = "$context.integration.error"
    })
  }

  depends_on = [data.aws_iam_role.account_logging]
}

resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:Redis is the cache; API Gateway caching would also hide stream invalidations for its TTL.
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = "ERROR"
    throttling_rate_limit  = var.throttle_rate
    throttling_burst_limit = var.throttle_burst
  }

  depends_on = [data.aws_iam_role.account_logging]
}

################################################################################
# Account-wide logging setting. API Gateway refuses a stage with access logs or
# method logging until the account (per region) names a CloudWatch role ("CloudWatch
# Logs role ARN must be set in account settings"). make bootstrap sets it, with its own
# role: provider 6 resets the setting when aws_api_gateway_account is destroyed, so it
# must not live in a stack that `make destroy` removes. The stage waits for that role.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
################################################################################

data "aws_iam_role" "account_logging" {
  count = var.manage_account_logging_role ? 1 : 0

  name = var.account_logging_role_name
}

# Stacks deployed before make bootstrap existed created the role and the setting here:
# forget them without destroying them (destroying the setting would reset it for every
# REST API in the region). The bootstrap's own role and setting take over; the old role
# (<name>-apigateway-logs) can then be deleted by hand.
removed {
  from = aws_api_gateway_account.this

  lifecycle {
    destroy = false
  }
}

removed {
  from = aws_iam_role.logging

  lifecycle {
    destroy = false
  }
}
