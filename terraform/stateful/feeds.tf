# The sales targets feed (README "File feeds"): the sales department drops one JSON file per
# month into a bucket of its own. Its ObjectCreated notifications under the feed's prefix go to
# an SQS queue that the triggerer polls (an AssetWatcher on the amazon provider's
# SqsSensorTrigger: terraform/mwaa sets [totes] sales_targets_queue_url), so a file is picked
# up as it lands; the DAG's 15-minute sweep lists the prefix anyway, so a lost notification
# loses no file. A message the triggerer receives five times without deleting it moves to the
# dead-letter queue, whose alarm tells the alerts topic.
#
# The bucket is not created here. aws_s3_bucket_notification owns the bucket's WHOLE
# notification configuration: if the sales department has notifications of its own, add them
# to this resource instead of keeping them elsewhere.

data "aws_s3_bucket" "sales_targets" {
  bucket = var.sales_targets_bucket_name
}

resource "aws_sqs_queue" "sales_targets_dead_letter" {
  name                              = "${local.name}-sales-targets-dead-letter"
  kms_master_key_id                 = aws_kms_key.data.arn
  kms_data_key_reuse_period_seconds = 300
  message_retention_seconds         = 1209600 # 14 days, SQS's longest
}

resource "aws_sqs_queue" "sales_targets" {
  name                              = "${local.name}-sales-targets"
  kms_master_key_id                 = aws_kms_key.data.arn
  kms_data_key_reuse_period_seconds = 300
  message_retention_seconds         = 345600 # 4 days: longer than any outage the sweep would not cover anyway
  receive_wait_time_seconds         = 20     # long polling, as the trigger asks
  visibility_timeout_seconds        = 60

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.sales_targets_dead_letter.arn
    maxReceiveCount     = 5
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "sales_targets_dead_letter" {
  queue_url = aws_sqs_queue.sales_targets_dead_letter.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.sales_targets.arn]
  })
}

# Only the targets bucket of this account may send to the queue.
data "aws_iam_policy_document" "sales_targets_queue" {
  statement {
    sid       = "TheTargetsBucketNotifies"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.sales_targets.arn]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [data.aws_s3_bucket.sales_targets.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "sales_targets" {
  queue_url = aws_sqs_queue.sales_targets.id
  policy    = data.aws_iam_policy_document.sales_targets_queue.json
}

resource "aws_s3_bucket_notification" "sales_targets" {
  bucket = data.aws_s3_bucket.sales_targets.id

  queue {
    id            = "totes-sales-targets"
    queue_arn     = aws_sqs_queue.sales_targets.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = var.sales_targets_prefix
  }

  # S3 checks that it may send to the queue when the notification is set.
  depends_on = [aws_sqs_queue_policy.sales_targets]
}

resource "aws_cloudwatch_metric_alarm" "sales_targets_dead_letter" {
  alarm_name          = "${local.name}-sales-targets-dead-letter"
  alarm_description   = "Notifications of the sales targets bucket the triggerer could not take (README, 'File feeds'): the sweep still picks the files up; look at the triggerer's log."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]

  dimensions = {
    QueueName = aws_sqs_queue.sales_targets_dead_letter.name
  }
}
