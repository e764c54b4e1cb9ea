# The layer's own customer-managed key: the image repository, the warehouse secret and the
# API's logs. Not terraform/stateful's data key: the API's roles can then decrypt nothing of the
# lake or of the pipeline's secrets. Rotated yearly.
resource "aws_kms_key" "api" {
  description             = "${local.name}: payments API image repository, warehouse secret, logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersTheKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsOfTheApiLogGroup"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnEquals = {
            "kms:EncryptionContext:aws:logs:arn" = local.log_group_arn
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "api" {
  name          = "alias/${local.name}-payments-api"
  target_key_id = aws_kms_key.api.key_id
}
