terraform {
  # use_lockfile (S3-native state locking) is generally available from Terraform 1.11;
  # this root writes the backend settings that use it.
  required_version = ">= 1.11.0, < 2.0.0"

  # Local state, one file per environment: make bootstrap passes -backend-config=path=<env>.tfstate.
  backend "local" {}

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0.0, < 7.0.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge({ Project = var.name, Environment = var.environment, ManagedBy = "terraform" }, var.tags)
  }
}
