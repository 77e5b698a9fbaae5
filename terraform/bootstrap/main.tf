# One-time foundation of a stack, applied by `make bootstrap` with the deployer's own
# credentials and kept in local state (terraform/bootstrap/<env>.tfstate, git-ignored):
# the S3 bucket and KMS key of the stack's remote state (locked with an S3 lock file),
# the permissions boundary every role of the stack carries, and the account's API
# Gateway logging setting with its role. Nothing here changes when the stack changes, so
# neither `make deploy` nor the pipeline ever touches it; `make destroy BOOTSTRAP=1`
# removes it last.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  iam        = "arn:${local.partition}:iam::${local.account_id}"
  state_key  = "${var.name}/${var.environment}.tfstate"
  # Named, not generated: the stack finds its boundary by this name.
  boundary_name = "${var.name}-boundary"
  boundary_arn  = "${local.iam}:policy/${local.boundary_name}"
}

################################################################################
# State bucket (modules/private_bucket), encrypted with a key of its own
################################################################################

resource "aws_kms_key" "state" {
  description             = "${var.name}: Terraform state"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy                  = data.aws_iam_policy_document.state_key.json
}

resource "aws_kms_alias" "state" {
  name          = "alias/${var.name}-tfstate"
  target_key_id = aws_kms_key.state.key_id
}

data "aws_iam_policy_document" "state_key" {
  #checkov:skip=CKV_AWS_111:A key policy's only resource is the key itself, written "*".
  #checkov:skip=CKV_AWS_356:A key policy's only resource is the key itself, written "*".
  #checkov:skip=CKV_AWS_109:The account root must administer its key (AWS's default key policy); IAM policies then grant use.
  statement {
    sid       = "AccountAdministersTheKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["${local.iam}:root"]
    }
  }
}

module "state" {
  source = "../modules/private_bucket"

  # A generated name (S3 names are global); make bootstrap writes it into the backend file.
  name_prefix     = "${trimsuffix(substr(var.name, 0, 27), "-")}-tfstate-"
  kms_key_arn     = aws_kms_key.state.arn
  noncurrent_days = 90
  # make destroy BOOTSTRAP=1 empties it only after the stack's state lists no resource.
  force_destroy = true
}

################################################################################
# Permissions boundary of every role the stack creates (and of the pipeline's
# apply role): whatever a role's own policies say, it can never act on IAM outside
# this stack's names, create a role without this boundary, drop or edit the boundary,
# assume other roles, or touch the state bucket's protections and key.
################################################################################

data "aws_iam_policy_document" "boundary" {
  #checkov:skip=CKV_AWS_107:A boundary caps, it grants nothing: "*" here is the ceiling, narrowed by the denials below and by each role's own policy.
  #checkov:skip=CKV_AWS_108:A boundary caps, it grants nothing: "*" here is the ceiling, narrowed by the denials below and by each role's own policy.
  #checkov:skip=CKV_AWS_109:A boundary caps, it grants nothing: "*" here is the ceiling, narrowed by the denials below and by each role's own policy.
  #checkov:skip=CKV_AWS_111:A boundary caps, it grants nothing: "*" here is the ceiling, narrowed by the denials below and by each role's own policy.
  #checkov:skip=CKV_AWS_356:A boundary caps, it grants nothing: "*" here is the ceiling, narrowed by the denials below and by each role's own policy.
  #checkov:skip=CKV_AWS_49:A boundary caps, it grants nothing: "*" here is the ceiling, narrowed by the denials below and by each role's own policy.
  #checkov:skip=CKV_AWS_110:A boundary caps, it grants nothing: "*" here is the ceiling, narrowed by the denials below (which forbid the escalation paths) and by each role's own policy.
  #checkov:skip=CKV_AWS_1:A boundary caps, it grants nothing: "*" here is the ceiling, narrowed by the denials below and by each role's own policy.
  # The ceiling: the services the stack is made of, and nothing else (no CloudTrail,
  # SSO, Organizations, SSM, EC2 instances' own services...).
  statement {
    sid = "OnlyTheServicesOfTheStack"
    actions = [
      "apigateway:*", "cloudwatch:*", "codebuild:*", "codeconnections:*", "codepipeline:*",
      "codestar-connections:*", "dynamodb:*", "ec2:*", "elasticache:*", "iam:*", "kms:*",
      "lambda:*", "logs:*", "s3:*", "secretsmanager:*", "sns:*", "sqs:*",
      "sts:GetCallerIdentity", "xray:*",
    ]
    resources = ["*"]
  }

  statement {
    sid     = "NoIamOutsideThisStack"
    effect  = "Deny"
    actions = ["iam:*"]
    not_resources = [
      "${local.iam}:role/${var.name}-*",
      "${local.iam}:policy/${var.name}-*",
      "${local.iam}:role/aws-service-role/*",
      "arn:${local.partition}:iam::aws:policy/*",
    ]
  }

  statement {
    sid       = "RolesOnlyWithThisBoundary"
    effect    = "Deny"
    actions   = ["iam:CreateRole", "iam:PutRolePermissionsBoundary"]
    resources = ["*"]
    condition {
      test     = "StringNotEquals"
      variable = "iam:PermissionsBoundary"
      values   = [local.boundary_arn]
    }
  }

  statement {
    sid       = "TheBoundaryStays"
    effect    = "Deny"
    actions   = ["iam:DeleteRolePermissionsBoundary", "iam:DeleteUserPermissionsBoundary", "iam:PutUserPermissionsBoundary"]
    resources = ["*"]
  }

  statement {
    sid = "TheBoundaryIsReadOnly"
    # Also protects this policy from the roles it bounds, though its name matches the stack's.
    effect    = "Deny"
    actions   = ["iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:TagPolicy", "iam:UntagPolicy"]
    resources = [local.boundary_arn]
  }

  statement {
    sid       = "NoRoleHopping"
    effect    = "Deny"
    actions   = ["sts:AssumeRole", "sts:AssumeRoleWithSAML", "sts:AssumeRoleWithWebIdentity"]
    resources = ["*"]
  }

  statement {
    sid       = "NoAccountOrOrganizationChanges"
    effect    = "Deny"
    actions   = ["organizations:*", "account:*"]
    resources = ["*"]
  }

  statement {
    sid       = "StateProtectionsStay"
    effect    = "Deny"
    actions   = ["s3:DeleteBucket", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketVersioning", "s3:PutEncryptionConfiguration", "s3:PutLifecycleConfiguration", "s3:PutBucketPublicAccessBlock", "s3:PutBucketOwnershipControls", "s3:PutReplicationConfiguration", "s3:PutBucketAcl"]
    resources = [module.state.arn]
  }

  statement {
    sid       = "StateHistoryStays"
    effect    = "Deny"
    actions   = ["s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutObjectVersionAcl"]
    resources = ["${module.state.arn}/*"]
  }

  statement {
    # Code and configuration of functions that are not this stack's: their roles may be
    # stronger than this boundary.
    sid           = "OtherFunctionsStay"
    effect        = "Deny"
    actions       = ["lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:AddPermission", "lambda:PublishLayerVersion"]
    not_resources = ["arn:${local.partition}:lambda:*:${local.account_id}:function:${var.name}-*"]
  }

  statement {
    sid       = "TheAccountLoggingSettingStays"
    effect    = "Deny"
    actions   = ["apigateway:PATCH"]
    resources = ["arn:${local.partition}:apigateway:*::/account"]
  }

  statement {
    sid       = "StateKeyStays"
    effect    = "Deny"
    actions   = ["kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy", "kms:DeleteAlias", "kms:UpdateAlias", "kms:CreateGrant"]
    resources = [aws_kms_key.state.arn]
  }
}

resource "aws_iam_policy" "boundary" {
  name        = local.boundary_name
  description = "Permissions boundary of every role of the ${var.name} stack"
  policy      = data.aws_iam_policy_document.boundary.json
}

################################################################################
# The account's API Gateway logging setting (per region) and the role it names. It
# lives here, not in the stack: the stack's stage cannot be created before it, and
# provider 6 resets the setting whenever aws_api_gateway_account is destroyed, which a
# stack's `make destroy` would do to every REST API in the region.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
################################################################################

data "aws_iam_policy_document" "apigateway_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "api_gateway_logging" {
  count = var.manage_api_gateway_logging ? 1 : 0

  # Not <name>-apigateway-logs: stacks deployed before the bootstrap existed made a role
  # of that name themselves.
  name                 = "${var.name}-apigw-logging"
  assume_role_policy   = data.aws_iam_policy_document.apigateway_assume.json
  permissions_boundary = aws_iam_policy.boundary.arn
}

resource "aws_iam_role_policy_attachment" "api_gateway_logging" {
  count = var.manage_api_gateway_logging ? 1 : 0

  role       = aws_iam_role.api_gateway_logging[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_api_gateway_logging ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.api_gateway_logging[0].arn

  # The role must be able to write logs before API Gateway accepts it.
  depends_on = [aws_iam_role_policy_attachment.api_gateway_logging]
}
