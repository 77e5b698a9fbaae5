################################################################################
# Products table: on-demand, point-in-time recovery, KMS, stream with both images
################################################################################

resource "aws_dynamodb_table" "this" {
  name                        = var.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "productId"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "productId"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  # The cache-invalidator refreshes entries from NewImage.
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"
}
