# One customer-managed key for the data of the pipeline: both lake buckets, the secrets Airflow
# reads, the alerts topic and the sales targets queues. Rotated yearly. The account root statement delegates access to
# IAM policies (the MWAA execution role gets Decrypt/GenerateDataKey through S3 and Secrets
# Manager only); CloudWatch may use it to publish alarms to the encrypted SNS topic.
resource "aws_kms_key" "data" {
  description             = "${local.name}: lake buckets, Airflow secrets, alerts topic"
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
        # The targets bucket's notifications into the encrypted queue (feeds.tf).
        Sid       = "S3NotifiesTheEncryptedQueue"
        Effect    = "Allow"
        Principal = { Service = "s3.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        Sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_alias" "data" {
  name          = "alias/${local.name}-data"
  target_key_id = aws_kms_key.data.key_id
}
