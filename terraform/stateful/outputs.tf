output "ingestion_bucket" {
  description = "Name of the ingestion bucket (Airflow variable totes_ingestion_bucket)."
  value       = aws_s3_bucket.lake["ingestion"].bucket
}

output "processed_bucket" {
  description = "Name of the processed bucket (Airflow variable totes_processed_bucket)."
  value       = aws_s3_bucket.lake["processed"].bucket
}

output "lake_bucket_arns" {
  description = "ARNs of the lake buckets, keyed ingestion and processed (terraform/mwaa grants the execution role these only)."
  value       = { for k, b in aws_s3_bucket.lake : k => b.arn }
}

output "access_log_bucket" {
  description = "Name of the bucket that receives the S3 server access logs (terraform/mwaa logs its source bucket there)."
  value       = aws_s3_bucket.access_logs.bucket
}

output "data_kms_key_arn" {
  description = "ARN of the KMS key of the lake buckets, the secrets and the alerts topic."
  value       = aws_kms_key.data.arn
}

output "connections_prefix" {
  description = "Secrets Manager prefix of the Airflow connections (secrets backend connections_prefix)."
  value       = local.connections_prefix
}

output "variables_prefix" {
  description = "Secrets Manager prefix of the Airflow variables (secrets backend variables_prefix)."
  value       = local.variables_prefix
}

output "connection_ids" {
  description = "The Airflow connection ids held in Secrets Manager (those of include/config.py)."
  value       = sort(concat(tolist(local.credential_connections), ["aws_default"]))
}

output "variable_names" {
  description = "The Airflow variable names held in Secrets Manager (those of include/config.py)."
  value       = sort(keys(local.airflow_variables))
}

output "secret_arns" {
  description = "ARNs of every secret Airflow reads (connections and variables): the execution role may read these and no other."
  value = concat(
    [for s in aws_secretsmanager_secret.connection : s.arn],
    [for s in aws_secretsmanager_secret.plain_connection : s.arn],
    [for s in aws_secretsmanager_secret.variable : s.arn],
  )
}

output "alerts_topic_arn" {
  description = "ARN of the SNS topic the CloudWatch alarms notify."
  value       = aws_sns_topic.alerts.arn
}

output "alert_sender_identity_arn" {
  description = "ARN of the SES identity the failure mails are sent from."
  value       = aws_sesv2_email_identity.alerts.arn
}

output "warehouse_schema" {
  description = "The warehouse schema (Airflow variable totes_warehouse_schema): terraform/mwaa names the warehouse Assets with it."
  value       = var.warehouse_schema
}

output "sales_targets_queue_url" {
  description = "URL of the queue of the sales targets bucket's notifications ([totes] sales_targets_queue_url: the feed's AssetWatcher)."
  value       = aws_sqs_queue.sales_targets.id
}

output "sales_targets_queue_arn" {
  description = "ARN of that queue (terraform/mwaa lets the execution role receive and delete its messages)."
  value       = aws_sqs_queue.sales_targets.arn
}

output "sales_targets_bucket_arn" {
  description = "ARN of the sales department's targets bucket (terraform/mwaa grants read-only access to the feed's prefix)."
  value       = data.aws_s3_bucket.sales_targets.arn
}

output "sales_targets_prefix" {
  description = "The key prefix of the targets files in that bucket."
  value       = var.sales_targets_prefix
}
