output "environment_name" {
  description = "Name of the MWAA environment."
  value       = aws_mwaa_environment.this.name
}

output "environment_arn" {
  description = "ARN of the MWAA environment."
  value       = aws_mwaa_environment.this.arn
}

output "airflow_version" {
  description = "Airflow version of the environment (equals requirements.txt's)."
  value       = aws_mwaa_environment.this.airflow_version
}

output "webserver_url" {
  description = "Host name of the Airflow UI (reachable as webserver_access_mode allows)."
  value       = aws_mwaa_environment.this.webserver_url
}

output "source_bucket" {
  description = "Name of the MWAA source bucket: the deploy syncs dist/mwaa/dags to s3://<this>/dags."
  value       = aws_s3_bucket.source.bucket
}

output "dags_s3_uri" {
  description = "Where the DAGs folder lives: aws s3 sync dist/mwaa/dags <this> --delete."
  value       = "s3://${aws_s3_bucket.source.bucket}/${aws_mwaa_environment.this.dag_s3_path}"
}

output "requirements_s3_object_version" {
  description = "S3 version of the requirements.txt the environment installs."
  value       = aws_s3_object.requirements.version_id
}

output "execution_role_arn" {
  description = "ARN of the environment's execution role."
  value       = aws_iam_role.execution.arn
}

output "mwaa_kms_key_arn" {
  description = "ARN of the KMS key of the environment and its source bucket (the deploy role needs kms:GenerateDataKey on it to upload DAGs)."
  value       = aws_kms_key.mwaa.arn
}

output "vpc_id" {
  description = "ID of the environment's VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets MWAA runs in."
  value       = aws_subnet.private[*].id
}

output "security_group_id" {
  description = "ID of the environment's security group (allow it in the totesys and warehouse firewalls)."
  value       = aws_security_group.mwaa.id
}

output "nat_public_ips" {
  description = "Public IPs of the NAT gateways: the addresses totesys and the warehouse see the environment connect from."
  value       = aws_eip.nat[*].public_ip
}

output "failed_runs_alarm_arn" {
  description = "ARN of the CloudWatch alarm on failed totes_etl runs."
  value       = aws_cloudwatch_metric_alarm.failed_runs.arn
}

output "dashboard_name" {
  description = "The CloudWatch dashboard of totes_etl: runs, durations, failures, freshness lag, rows loaded and quarantined."
  value       = aws_cloudwatch_dashboard.totes_etl.dashboard_name
}
