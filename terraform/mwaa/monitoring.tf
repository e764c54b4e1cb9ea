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

# The pipeline's own metrics (include/metrics.py). Every task logs each one as a structured line
# ({"totes_metric": ..., "table": ..., "value": ...}) that MWAA ships to the task log group as
# JSON; these filters make CloudWatch metrics of them in the TotesEtl namespace: per table (the
# Table dimension, for the dashboard) and over all tables (for the alarms: an alarm cannot
# search dimensions). The names equal include.metrics.METRICS (tests/test_terraform.py).
locals {
  task_log_group = element(split(":", aws_mwaa_environment.this.logging_configuration[0].task_logs[0].cloud_watch_log_group_arn), 6)
  totes_metrics  = toset(["freshness_lag_seconds", "rows_loaded", "rows_quarantined"])
  metrics_ns     = "TotesEtl/${local.name}"
}

resource "aws_cloudwatch_log_metric_filter" "by_table" {
  for_each       = local.totes_metrics
  name           = "${local.name}-${each.key}-by-table"
  log_group_name = local.task_log_group
  pattern        = "{ $.totes_metric = \"${each.key}\" }"

  metric_transformation {
    namespace  = local.metrics_ns
    name       = each.key
    value      = "$.value"
    dimensions = { Table = "$.table" }
  }
}

resource "aws_cloudwatch_log_metric_filter" "all_tables" {
  for_each       = local.totes_metrics
  name           = "${local.name}-${each.key}"
  log_group_name = local.task_log_group
  pattern        = "{ $.totes_metric = \"${each.key}\" }"

  metric_transformation {
    namespace = local.metrics_ns
    name      = "${each.key}_all_tables"
    value     = "$.value"
  }
}

# Alarms on the pipeline's figures, to the alerts topic. freshness_lag: some source table's lag
# (check.freshness, every run) over the 30-minute promise; the deadline mail watches the runs,
# this the data. rows_quarantined: any row put in the quarantine. No run, no figure (missing
# data): a stopped pipeline is the failed-run alarm's and the deadline mail's to report.
locals {
  figure_alarms = {
    freshness_lag = {
      metric      = "freshness_lag_seconds_all_tables"
      statistic   = "Maximum"
      threshold   = 1800
      description = "A totesys table's changes are more than 30 minutes from the warehouse (check.freshness): see the dashboard ${local.name}-totes-etl and docs/runbook.md."
    }
    rows_quarantined = {
      metric      = "rows_quarantined_all_tables"
      statistic   = "Sum"
      threshold   = 0
      description = "totes_etl put rows in the quarantine: the quarantine mail says which and why; docs/runbook.md, 'Replay quarantined data'."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "figures" {
  for_each          = local.figure_alarms
  alarm_name        = "${local.name}-totes_etl-${replace(each.key, "_", "-")}"
  alarm_description = each.value.description

  namespace   = local.metrics_ns
  metric_name = each.value.metric

  statistic           = each.value.statistic
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"

  alarm_actions = [local.stateful.alerts_topic_arn]
  ok_actions    = [local.stateful.alerts_topic_arn]
}

# One page for on-call: runs, their durations, failures (MWAA's own DAG metrics), freshness
# lag, rows loaded and quarantined per table (the filters above).
locals {
  mwaa_dag = ["Environment", local.name, "DAG", "totes_etl"]
  per_table = {
    freshness_lag_seconds = "Maximum"
    rows_quarantined      = "Sum"
    rows_loaded           = "Sum"
  }
  per_table_titles = {
    freshness_lag_seconds = "Freshness lag per source table (seconds; the promise is 1800)"
    rows_quarantined      = "Rows quarantined per table"
    rows_loaded           = "Rows loaded per table"
  }
}

resource "aws_cloudwatch_dashboard" "totes_etl" {
  dashboard_name = "${local.name}-totes-etl"
  dashboard_body = jsonencode({
    widgets = concat(
      [
        {
          type   = "metric"
          x      = 0
          y      = 0
          width  = 12
          height = 6
          properties = {
            title  = "Runs (succeeded, failed)"
            region = local.region
            stat   = "SampleCount"
            period = 900
            metrics = [
              concat(["AmazonMWAA", "DAGDurationSuccess"], local.mwaa_dag),
              concat(["AmazonMWAA", "DAGDurationFailed"], local.mwaa_dag),
            ]
          }
        },
        {
          type   = "metric"
          x      = 12
          y      = 0
          width  = 12
          height = 6
          properties = {
            title   = "Run duration (seconds)"
            region  = local.region
            stat    = "Maximum"
            period  = 900
            metrics = [concat(["AmazonMWAA", "DAGDurationSuccess"], local.mwaa_dag)]
          }
        },
        {
          type   = "alarm"
          x      = 12
          y      = 12
          width  = 12
          height = 6
          properties = {
            title = "Alarms"
            alarms = concat(
              [aws_cloudwatch_metric_alarm.failed_runs.arn],
              [for a in aws_cloudwatch_metric_alarm.figures : a.arn],
            )
          }
        },
      ],
      [
        for i, metric in keys(local.per_table) : {
          type   = "metric"
          x      = (i % 2) * 12
          y      = 6 + floor(i / 2) * 6
          width  = 12
          height = 6
          properties = {
            title  = local.per_table_titles[metric]
            region = local.region
            period = 900
            metrics = [[{
              id         = metric
              expression = "SEARCH('{${local.metrics_ns},Table} MetricName=\"${metric}\"', '${local.per_table[metric]}', 900)"
            }]]
          }
        }
      ],
    )
  })
}
