# The least-privilege policy of the `catalog` CLI (README, "Operator permissions"), for
# the people or jobs that load and edit the catalog: attach it to their role, group or
# user. Terraform owns the table, so neither CreateTable nor DescribeTable
# (`catalog create-table`) is granted. The cache part lets `put`, `delete` and
# `invalidate` drop entries from inside the VPC; from outside it, the stream invalidator
# refreshes them.

locals {
  # DynamoDB and Secrets Manager use the key on the caller's behalf; nothing else may.
  # The suffix is left open for the partitions whose endpoints are not amazonaws.com.
  kms_via_services = [
    "dynamodb.${var.region}.amazonaws.com*",
    "secretsmanager.${var.region}.amazonaws.com*",
  ]
}

data "aws_iam_policy_document" "operator" {
  statement {
    sid = "EditTheProducts"
    # catalog load (BatchWriteItem), get (GetItem), put (GetItem, PutItem), delete
    # (DeleteItem): tests/integration/catalog_cli.rs records what each command calls.
    actions = [
      "dynamodb:BatchWriteItem",
      "dynamodb:DeleteItem",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
    ]
    resources = [var.table_arn]
  }

  statement {
    sid       = "UseTheKeyThroughTheTableAndTheSecret"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = local.kms_via_services
    }
  }

  # Redis with an AUTH token: read it, as the functions do.
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
}

resource "aws_iam_policy" "operator" {
  name        = "${var.name}-catalog-operator"
  description = "${var.name}: what the catalog CLI needs (load, get, put, delete, invalidate); attach it to the operators' role, group or user."
  policy      = data.aws_iam_policy_document.operator.json
}
