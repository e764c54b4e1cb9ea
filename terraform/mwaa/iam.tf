# The MWAA execution role, least privilege: MWAA's own needs (metrics, its log groups, its
# Celery queue, its source bucket, its key) plus exactly what totes_etl does: read and write
# the two lake buckets, read the secrets of its connections and variables.

locals {
  environment_arn  = "arn:${local.partition}:airflow:${local.region}:${local.account_id}:environment/${local.name}"
  lake_bucket_arns = values(local.stateful.lake_bucket_arns)
}

data "aws_iam_policy_document" "execution_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.environment_arn]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.name}-mwaa-execution"
  description        = "Execution role of the MWAA environment ${local.name}"
  assume_role_policy = data.aws_iam_policy_document.execution_assume.json
}

data "aws_iam_policy_document" "execution" {
  # --- MWAA itself --------------------------------------------------------------------------
  statement {
    sid       = "PublishEnvironmentMetrics"
    actions   = ["airflow:PublishMetrics"]
    resources = [local.environment_arn]
  }

  statement {
    sid       = "NeverListOtherBuckets"
    effect    = "Deny"
    actions   = ["s3:ListAllMyBuckets"]
    resources = [aws_s3_bucket.source.arn, "${aws_s3_bucket.source.arn}/*"]
  }

  statement {
    sid       = "ReadTheSourceBucket"
    actions   = ["s3:GetObject*", "s3:GetBucket*", "s3:List*"]
    resources = [aws_s3_bucket.source.arn, "${aws_s3_bucket.source.arn}/*"]
  }

  statement {
    sid = "WriteTheEnvironmentsLogGroups"
    actions = [
      "logs:CreateLogStream",
      "logs:CreateLogGroup",
      "logs:PutLogEvents",
      "logs:GetLogEvents",
      "logs:GetLogRecord",
      "logs:GetLogGroupFields",
      "logs:GetQueryResults",
    ]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:airflow-${local.name}-*"]
  }

  statement {
    sid       = "DescribeLogGroups"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["*"]
  }

  statement {
    sid       = "CheckAccountPublicAccessBlock"
    actions   = ["s3:GetAccountPublicAccessBlock"]
    resources = ["*"]
  }

  statement {
    sid       = "PutEnvironmentMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
  }

  statement {
    sid = "UseTheCeleryQueue"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:ReceiveMessage",
      "sqs:SendMessage",
    ]
    # The queue lives in an account of the MWAA service, hence any account.
    resources = ["arn:${local.partition}:sqs:${local.region}:*:airflow-celery-*"]
  }

  statement {
    sid       = "UseTheEnvironmentKeyThroughSqsAndS3"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"]
    resources = [aws_kms_key.mwaa.arn]

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["sqs.${local.region}.amazonaws.com", "s3.${local.region}.amazonaws.com"]
    }
  }

  # --- totes_etl ----------------------------------------------------------------------------
  statement {
    sid       = "ListTheLakeBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = local.lake_bucket_arns
  }

  statement {
    sid       = "ReadWriteTheLakeObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [for arn in local.lake_bucket_arns : "${arn}/*"]
  }

  # --- the sales targets feed (README "File feeds"): read-only, its prefix only ----------------
  statement {
    sid       = "ListTheSalesTargetsPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.stateful.sales_targets_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.stateful.sales_targets_prefix}*"]
    }
  }

  statement {
    sid       = "ReadTheSalesTargets"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${local.stateful.sales_targets_bucket_arn}/${local.stateful.sales_targets_prefix}*"]
  }

  statement {
    sid       = "TakeTheSalesTargetsNotifications"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [local.stateful.sales_targets_queue_arn]
  }

  statement {
    sid       = "ReadTheAirflowSecrets"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = local.stateful.secret_arns
  }

  statement {
    sid       = "UseTheDataKeyThroughS3SecretsManagerAndSqs"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [local.stateful.data_kms_key_arn]

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com", "secretsmanager.${local.region}.amazonaws.com", "sqs.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "mwaa-and-totes-etl"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
