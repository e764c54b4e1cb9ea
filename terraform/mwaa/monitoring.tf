# A failed totes_etl run (after every task's retries) raises an alarm on the alerts topic of
# terraform/stateful, beside the per-task failure mails the DAG sends itself. MWAA publishes
# Airflow's dagrun.duration.failed.<dag_id> as AmazonMWAA / DAGDurationFailed, one sample per
# failed run.
resource "aws_cloudwatch_metric_alarm" "failed_runs" {
  alarm_name        = "${local.name}-totes_etl-failed-runs"
  alarm_description = "A totes_etl run failed in MWAA environment ${local.name}: see its task logs (airflow-${local.name}-Task) and the failure mails."

  namespace   = "AmazonMWAA"
  metric_name = "DAGDurationFailed"
  dimensions = {
    Environment = aws_mwaa_environment.this.name
    DAG         = "totes_etl"
  }

  statistic           = "SampleCount"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"

  alarm_actions = [local.stateful.alerts_topic_arn]
  ok_actions    = [local.stateful.alerts_topic_arn]
}
