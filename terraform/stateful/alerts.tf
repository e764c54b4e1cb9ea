# Alert channels: SES sends the failure mails of every task (SmtpNotifier through the
# smtp_default connection), SNS carries the CloudWatch alarms of terraform/mwaa.

# The sender of include/alerts.py. An e-mail identity is verified by a link SES mails to it; a
# domain identity needs the DKIM records of dkim_signing_attributes in the domain's DNS. While
# the account is in the SES sandbox every recipient must be verified too.
resource "aws_sesv2_email_identity" "alerts" {
  email_identity = var.alert_sender
}

resource "aws_sns_topic" "alerts" {
  name              = "${local.name}-alerts"
  kms_master_key_id = aws_kms_key.data.arn
}

# Each subscriber confirms by the link SNS mails to them.
resource "aws_sns_topic_subscription" "alerts_email" {
  for_each = toset(var.alert_emails)

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}
