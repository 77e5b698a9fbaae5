# Remote state in the S3 bucket that `make bootstrap` creates, locked with an S3 lock
# file. The settings come from terraform/env/<env>.s3.tfbackend (partial configuration):
# `make` and the pipeline both run `terraform init -backend-config=env/<env>.s3.tfbackend`.
terraform {
  backend "s3" {}
}
