# Two alarms on terraform/stateful's alerts topic: no healthy API task behind the load balancer,
# and the API answering 5xx (a 503 means the warehouse is unreachable, not ready, or refuses the
# role: docs/payments_api.md, "Errors"; docs/runbook.md says what to do).

resource "aws_cloudwatch_metric_alarm" "no_healthy_task" {
  alarm_name        = "${local.name}-payments-api-no-healthy-task"
  alarm_description = "No healthy payments API task behind ${aws_lb.api.name}: see the ECS service events and the log group ${local.log_group_name}."

  namespace   = "AWS/ApplicationELB"
  metric_name = "HealthyHostCount"
  dimensions = {
    LoadBalancer = aws_lb.api.arn_suffix
    TargetGroup  = aws_lb_target_group.api.arn_suffix
  }

  statistic           = "Minimum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"

  alarm_actions = [local.stateful.alerts_topic_arn]
  ok_actions    = [local.stateful.alerts_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "errors" {
  alarm_name        = "${local.name}-payments-api-5xx"
  alarm_description = "The payments API answered 5xx (503: warehouse unreachable, not ready, or the role may not read): see the log group ${local.log_group_name}."

  namespace   = "AWS/ApplicationELB"
  metric_name = "HTTPCode_Target_5XX_Count"
  dimensions = {
    LoadBalancer = aws_lb.api.arn_suffix
    TargetGroup  = aws_lb_target_group.api.arn_suffix
  }

  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.error_alarm_threshold
  treat_missing_data  = "notBreaching"

  alarm_actions = [local.stateful.alerts_topic_arn]
  ok_actions    = [local.stateful.alerts_topic_arn]
}
