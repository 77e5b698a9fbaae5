# The role the people or jobs that load and edit the catalog assume to run the `catalog`
# CLI (README, "Operator CLI"), with what its commands send to DynamoDB and nothing
# else. A role of the stack, under its permissions boundary, with its policy inline: a
# policy the stack could change must not be attached to principals the boundary does not
# cap. Terraform owns the table, so `catalog create-table` is not granted; the cache
# only lets the functions in, and the stream's invalidator updates it after every write.

# Trusts the account, narrowed to the principals named: IAM checks a principal named in
# a trust policy when it is written (a missing one fails the apply, after the plan was
# approved) and a deleted one turns into an id every later plan would change, where a
# condition on aws:PrincipalArn does neither and takes wildcards (Identity Center's
# roles carry a generated path). TagSession: CI jobs (GitHub's
# configure-aws-credentials) tag their sessions.
data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "AWS"
      identifiers = [var.account_root_arn]
    }
    dynamic "condition" {
      for_each = length(var.principal_arns) > 0 ? [var.principal_arns] : []

      content {
        test     = "ArnLike"
        variable = "aws:PrincipalArn"
        values   = condition.value
      }
    }
  }
}

resource "aws_iam_role" "operator" {
  name                 = "${var.name}-catalog-operator"
  description          = "${var.name}: the catalog CLI (load, get, put, delete) on the products table."
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary_arn
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
    sid = "UseTheTableKeyThroughDynamoDb"
    # An item call on a table under a customer managed key needs the caller's Decrypt,
    # which only DynamoDB may use. The suffix is left open for the partitions whose
    # endpoints are not amazonaws.com.
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["dynamodb.${var.region}.amazonaws.com*"]
    }
  }
}

resource "aws_iam_role_policy" "operator" {
  name   = "edit-products"
  role   = aws_iam_role.operator.id
  policy = data.aws_iam_policy_document.operator.json
}
