# The environment's customer-managed key: MWAA encrypts its metadata database, queue and logs
# with it (MWAA adds its own grants when the environment is created), the source bucket and the
# flow logs use it too. Rotated yearly.
resource "aws_kms_key" "mwaa" {
  description             = "${local.name}: MWAA environment, source bucket, flow logs"
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
        Sid       = "CloudWatchLogsOfThisAccount"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:*"
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "mwaa" {
  name          = "alias/${local.name}-mwaa"
  target_key_id = aws_kms_key.mwaa.key_id
}
