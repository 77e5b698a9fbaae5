# CodePipeline: source (CodeStar connection) -> build (lint, test, package, plan) ->
# manual approval -> apply. Artifacts in a private, versioned, KMS-encrypted bucket.

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

resource "aws_s3_bucket" "artifacts" {
  #checkov:skip=CKV_AWS_18:Access logs of a pipeline-only bucket would need a second bucket; CloudTrail records its API calls.
  #checkov:skip=CKV_AWS_144:Build artifacts are rebuilt from source; no cross-region copy needed.
  #checkov:skip=CKV2_AWS_62:Nothing consumes events from this bucket.
  # bucket_prefix takes at most 37 characters.
  bucket_prefix = "${trimsuffix(substr(var.name, 0, 26), "-")}-artifacts-"
  force_destroy = true
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    id     = "expire-old-artifacts"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    expiration {
      days = 90
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

################################################################################
# CodeBuild roles. The build stage runs branch code (tests, build scripts, crates,
# npm and PyPI packages) before anyone approves it, so it can read but not change the
# account: read-only access plus what a plan needs (its artifact, the state and the
# state's lock file, the keys of both). Only the apply stage, after the approval, can
# change the account, and every role of the stack, that one included, carries the
# permissions boundary of make bootstrap: whatever a role is granted, it cannot act on
# IAM outside this stack's names, create a role without the boundary, drop or edit it.
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

# terraform plan refreshes every resource of the stack: it reads, it never writes.
resource "aws_iam_role_policy_attachment" "build_read_only" {
  role       = aws_iam_role.build.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/ReadOnlyAccess"
}

data "aws_iam_policy_document" "build" {
  statement {
    sid       = "WriteBuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.builds.arn}:*"]
  }

  statement {
    sid       = "HandOnThePlan"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
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
}

resource "aws_iam_role_policy" "build" {
  name   = "plan-only"
  role   = aws_iam_role.build.id
  policy = data.aws_iam_policy_document.build.json
}

resource "aws_iam_role" "apply" {
  name                 = "${var.name}-codebuild-apply"
  assume_role_policy   = data.aws_iam_policy_document.codebuild_assume.json
  permissions_boundary = var.permissions_boundary_arn
}

# Everything but IAM and Organizations; IAM below, for this stack's names only.
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
    sid       = "CreateRolesOnlyUnderTheBoundary"
    effect    = "Deny"
    actions   = ["iam:CreateRole", "iam:PutRolePermissionsBoundary"]
    resources = ["*"]
    condition {
      test     = "StringNotEquals"
      variable = "iam:PermissionsBoundary"
      values   = [var.permissions_boundary_arn]
    }
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

resource "aws_codebuild_project" "build" {
  name           = "${var.name}-build"
  description    = "make lint test package, then terraform validate and a saved plan (read-only role)"
  service_role   = aws_iam_role.build.arn
  encryption_key = var.kms_key_arn
  build_timeout  = 90

  artifacts {
    type = "CODEPIPELINE"
  }

  environment {
    compute_type = "BUILD_GENERAL1_MEDIUM"
    image        = var.build_image
    type         = "LINUX_CONTAINER"

    environment_variable {
      name  = "DEPLOY_ENV"
      value = var.environment
    }
  }

  source {
    type      = "CODEPIPELINE"
    buildspec = "buildspec.yml"
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.builds.name
      status     = "ENABLED"
    }
  }
}

resource "aws_codebuild_project" "apply" {
  name           = "${var.name}-apply"
  description    = "terraform apply of the approved plan, then make smoke"
  service_role   = aws_iam_role.apply.arn
  encryption_key = var.kms_key_arn
  build_timeout  = 60

  artifacts {
    type = "CODEPIPELINE"
  }

  environment {
    compute_type = "BUILD_GENERAL1_SMALL"
    image        = var.build_image
    type         = "LINUX_CONTAINER"

    environment_variable {
      name  = "DEPLOY_ENV"
      value = var.environment
    }
  }

  source {
    type = "CODEPIPELINE"
    # Inline, from the applied configuration: the build stage (unapproved branch code)
    # writes the artifact, so it must not be able to choose what the apply stage runs.
    buildspec = var.apply_buildspec
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
    resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
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
    resources = [aws_codebuild_project.build.arn, aws_codebuild_project.apply.arn]
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
    location = aws_s3_bucket.artifacts.bucket
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
    name = "BuildTestPlan"

    action {
      name             = "BuildTestPlan"
      category         = "Build"
      owner            = "AWS"
      provider         = "CodeBuild"
      version          = "1"
      input_artifacts  = ["source"]
      output_artifacts = ["plan"]

      configuration = {
        ProjectName = aws_codebuild_project.build.name
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
        CustomData = "Approve the commit and the plan that BuildTestPlan printed; Apply prints and applies exactly that saved plan."
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
      input_artifacts = ["plan"]

      configuration = {
        ProjectName = aws_codebuild_project.apply.name
      }
    }
  }
}
