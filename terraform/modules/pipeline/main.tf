# CodePipeline: Source (CodeStar connection) -> BuildTest (lint, test, package) -> Plan
# -> manual approval -> Apply (plan again, apply if equal, smoke test). Artifacts in a
# private, versioned, KMS-encrypted bucket.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region
}

################################################################################
# Source connection (approve it once in the console)
################################################################################

# A new connection is PENDING until someone completes the handshake in the console
# (Developer Tools > Settings > Connections); the pipeline's first run fails until
# then, and "Release change" runs it again. See the README's First deploy.
resource "aws_codestarconnections_connection" "this" {
  name          = substr("${var.name}-source", 0, 32)
  provider_type = var.source_provider
}

################################################################################
# Artifact bucket
################################################################################

module "artifacts" {
  source = "../private_bucket"

  name_prefix     = "${trimsuffix(substr(var.name, 0, 26), "-")}-artifacts-"
  kms_key_arn     = var.kms_key_arn
  noncurrent_days = 30
  expire_days     = 90
  force_destroy   = true
}

################################################################################
# CodeBuild roles, one per stage, by how much each stage's code is trusted.
# - build (BuildTest) runs branch code and its dependencies (crates, npm and PyPI
#   packages, build scripts, rustup's installer) before anyone approved anything: it
#   gets no AWS access at all beyond its logs, its input and its output (the two zips).
# - plan (Plan) runs Terraform only, from the source commit, with the zips: read-only
#   access, no data reads, plus what a plan needs (the state's lock file, the keys).
# - apply (Apply), after the approval, plans again from the same commit and zips and
#   applies only if that plan equals the approved one; only it can change the account,
#   and, like every role of the stack, it carries the permissions boundary of make
#   bootstrap.
# The plan and apply commands are inlined by Terraform (var.plan_buildspec,
# var.apply_buildspec): nothing an earlier stage writes can change what they run.
################################################################################

data "aws_iam_policy_document" "codebuild_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "build" {
  name                 = "${var.name}-codebuild-build"
  assume_role_policy   = data.aws_iam_policy_document.codebuild_assume.json
  permissions_boundary = var.permissions_boundary_arn
}

data "aws_iam_policy_document" "build" {
  statement {
    sid       = "WriteBuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.builds.arn}:*"]
  }

  statement {
    sid       = "ReadTheSourceWriteTheZips"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${module.artifacts.arn}/*"]
  }

  statement {
    sid       = "UseTheArtifactKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "build" {
  name   = "artifacts-only"
  role   = aws_iam_role.build.id
  policy = data.aws_iam_policy_document.build.json
}

resource "aws_iam_role" "plan" {
  name                 = "${var.name}-codebuild-plan"
  assume_role_policy   = data.aws_iam_policy_document.codebuild_assume.json
  permissions_boundary = var.permissions_boundary_arn
}

# terraform plan refreshes every resource of the stack: it reads, it never writes.
resource "aws_iam_role_policy_attachment" "plan_read_only" {
  role       = aws_iam_role.plan.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/ReadOnlyAccess"
}

data "aws_iam_policy_document" "plan" {
  statement {
    sid       = "WriteBuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.builds.arn}:*"]
  }

  statement {
    sid       = "HandOnThePlan"
    actions   = ["s3:PutObject"]
    resources = ["${module.artifacts.arn}/*"]
  }

  statement {
    sid       = "TakeAndReleaseTheStateLock"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["arn:${local.partition}:s3:::${var.state_bucket}/${var.state_key}.tflock"]
  }

  statement {
    sid       = "UseTheKeysOfStateAndArtifacts"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn, var.state_kms_key_arn]
  }

  statement {
    # Refreshing the AUTH token's secret version reads its value (it is in the state too).
    sid       = "RefreshTheCacheToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${var.name}-cache-auth-*"]
  }

  statement {
    # ReadOnlyAccess reads data too; a plan needs configuration only.
    sid           = "NoDataReadsOutsideStateAndArtifacts"
    effect        = "Deny"
    actions       = ["s3:GetObject", "s3:GetObjectVersion"]
    not_resources = ["arn:${local.partition}:s3:::${var.state_bucket}/*", "${module.artifacts.arn}/*"]
  }

  statement {
    sid       = "NoTableReads"
    effect    = "Deny"
    actions   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:GetRecords", "dynamodb:ExecuteStatement", "dynamodb:BatchExecuteStatement", "dynamodb:ExportTableToPointInTime"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "plan" {
  name   = "plan-only"
  role   = aws_iam_role.plan.id
  policy = data.aws_iam_policy_document.plan.json
}

resource "aws_iam_role" "apply" {
  name                 = "${var.name}-codebuild-apply"
  assume_role_policy   = data.aws_iam_policy_document.codebuild_assume.json
  permissions_boundary = var.permissions_boundary_arn
}

# Everything but IAM and Organizations; IAM below, for this stack's names only. The
# boundary refuses any role created without it.
resource "aws_iam_role_policy_attachment" "apply_power_user" {
  role       = aws_iam_role.apply.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/PowerUserAccess"
}

data "aws_iam_policy_document" "apply" {
  statement {
    sid       = "ManageThisStacksRolesAndPolicies"
    actions   = ["iam:*"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role/${var.name}-*", "arn:${local.partition}:iam::${local.account_id}:policy/${var.name}-*"]
  }

  statement {
    sid       = "WriteBuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.builds.arn}:*"]
  }
}

resource "aws_iam_role_policy" "apply" {
  name   = "manage-stack-iam"
  role   = aws_iam_role.apply.id
  policy = data.aws_iam_policy_document.apply.json
}

resource "aws_cloudwatch_log_group" "builds" {
  name              = "/codebuild/${var.name}"
  retention_in_days = 365
  kms_key_id        = var.kms_key_arn
}

locals {
  # One CodeBuild project per stage. BuildTest reads its commands from the commit;
  # Plan and Apply from this configuration (see the roles above).
  projects = {
    build = {
      description = "make lint test package (branch code: no AWS access)"
      role_arn    = aws_iam_role.build.arn
      buildspec   = "buildspec.yml"
      compute     = "BUILD_GENERAL1_MEDIUM"
      timeout     = 90
    }
    plan = {
      description = "terraform validate and a saved plan of the source commit and the zips (read-only)"
      role_arn    = aws_iam_role.plan.arn
      buildspec   = var.plan_buildspec
      compute     = "BUILD_GENERAL1_SMALL"
      timeout     = 30
    }
    apply = {
      description = "plan again, apply only if it equals the approved plan, then make smoke"
      role_arn    = aws_iam_role.apply.arn
      buildspec   = var.apply_buildspec
      compute     = "BUILD_GENERAL1_SMALL"
      timeout     = 60
    }
  }
}

resource "aws_codebuild_project" "this" {
  for_each = local.projects

  name           = "${var.name}-${each.key}"
  description    = each.value.description
  service_role   = each.value.role_arn
  encryption_key = var.kms_key_arn
  build_timeout  = each.value.timeout

  artifacts {
    type = "CODEPIPELINE"
  }

  environment {
    compute_type = each.value.compute
    image        = var.build_image
    type         = "LINUX_CONTAINER"

    environment_variable {
      name  = "DEPLOY_ENV"
      value = var.environment
    }
  }

  source {
    type      = "CODEPIPELINE"
    buildspec = each.value.buildspec
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.builds.name
      status     = "ENABLED"
    }
  }
}

################################################################################
# Pipeline
################################################################################

data "aws_iam_policy_document" "codepipeline_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["codepipeline.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "codepipeline" {
  name                 = "${var.name}-codepipeline"
  assume_role_policy   = data.aws_iam_policy_document.codepipeline_assume.json
  permissions_boundary = var.permissions_boundary_arn
}

data "aws_iam_policy_document" "codepipeline" {
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:GetBucketVersioning"]
    resources = [module.artifacts.arn, "${module.artifacts.arn}/*"]
  }

  statement {
    sid       = "ArtifactKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "Source"
    actions   = ["codestar-connections:UseConnection", "codeconnections:UseConnection"]
    resources = [aws_codestarconnections_connection.this.arn]
  }

  statement {
    sid       = "Builds"
    actions   = ["codebuild:StartBuild", "codebuild:BatchGetBuilds"]
    resources = [for project in aws_codebuild_project.this : project.arn]
  }
}

resource "aws_iam_role_policy" "codepipeline" {
  name   = "run-pipeline"
  role   = aws_iam_role.codepipeline.id
  policy = data.aws_iam_policy_document.codepipeline.json
}

resource "aws_codepipeline" "this" {
  name          = var.name
  role_arn      = aws_iam_role.codepipeline.arn
  pipeline_type = "V2"

  artifact_store {
    location = module.artifacts.id
    type     = "S3"

    encryption_key {
      id   = var.kms_key_arn
      type = "KMS"
    }
  }

  stage {
    name = "Source"

    action {
      name             = "Source"
      category         = "Source"
      owner            = "AWS"
      provider         = "CodeStarSourceConnection"
      version          = "1"
      output_artifacts = ["source"]

      configuration = {
        ConnectionArn    = aws_codestarconnections_connection.this.arn
        FullRepositoryId = var.repository_id
        BranchName       = var.repository_branch
      }
    }
  }

  stage {
    name = "BuildTest"

    action {
      name             = "BuildTest"
      category         = "Build"
      owner            = "AWS"
      provider         = "CodeBuild"
      version          = "1"
      input_artifacts  = ["source"]
      output_artifacts = ["package"]

      configuration = {
        ProjectName = aws_codebuild_project.this["build"].name
      }
    }
  }

  stage {
    name = "Plan"

    action {
      name             = "Plan"
      category         = "Build"
      owner            = "AWS"
      provider         = "CodeBuild"
      version          = "1"
      input_artifacts  = ["source", "package"]
      output_artifacts = ["plan"]

      configuration = {
        ProjectName   = aws_codebuild_project.this["plan"].name
        PrimarySource = "source"
      }
    }
  }

  stage {
    name = "Approve"

    action {
      name     = "ReviewPlan"
      category = "Approval"
      owner    = "AWS"
      provider = "Manual"
      version  = "1"

      configuration = {
        CustomData = "Approve the commit and the plan that the Plan stage printed. Apply plans the same commit again and applies only if that plan equals this one."
      }
    }
  }

  stage {
    name = "Apply"

    action {
      name            = "Apply"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source", "package", "plan"]

      configuration = {
        ProjectName   = aws_codebuild_project.this["apply"].name
        PrimarySource = "source"
      }
    }
  }
}
