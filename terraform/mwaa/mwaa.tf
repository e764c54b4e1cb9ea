locals {
  # Must equal requirements.txt's and constraints.txt's Airflow (tests/test_terraform.py).
  airflow_version = "3.3.1"

  # include/config.py: the connection ids and variable names the secrets backend may look up;
  # any other id goes straight to the environment's metadata database, without an API call.
  secrets_backend_kwargs = {
    connections_prefix         = local.stateful.connections_prefix
    variables_prefix           = local.stateful.variables_prefix
    connections_lookup_pattern = "^(${join("|", local.stateful.connection_ids)})$"
    variables_lookup_pattern   = "^(${join("|", local.stateful.variable_names)})$"
  }
}

resource "aws_mwaa_environment" "this" {
  name              = local.name
  airflow_version   = local.airflow_version
  environment_class = var.environment_class
  min_workers       = var.min_workers
  max_workers       = var.max_workers
  schedulers        = var.schedulers

  execution_role_arn = aws_iam_role.execution.arn
  kms_key            = aws_kms_key.mwaa.arn

  source_bucket_arn              = aws_s3_bucket.source.arn
  dag_s3_path                    = "dags"
  requirements_s3_path           = aws_s3_object.requirements.key
  requirements_s3_object_version = aws_s3_object.requirements.version_id

  webserver_access_mode           = var.webserver_access_mode
  weekly_maintenance_window_start = var.weekly_maintenance_window_start

  airflow_configuration_options = {
    "secrets.backend"        = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    "secrets.backend_kwargs" = jsonencode(local.secrets_backend_kwargs)
    "core.load_examples"     = "False"
  }

  # Every Airflow component logs to CloudWatch (log groups airflow-<name>-<Component>).
  logging_configuration {
    dag_processing_logs {
      enabled   = true
      log_level = var.log_level
    }

    scheduler_logs {
      enabled   = true
      log_level = var.log_level
    }

    task_logs {
      enabled   = true
      log_level = var.log_level
    }

    webserver_logs {
      enabled   = true
      log_level = var.log_level
    }

    worker_logs {
      enabled   = true
      log_level = var.log_level
    }
  }

  network_configuration {
    security_group_ids = [aws_security_group.mwaa.id]
    subnet_ids         = aws_subnet.private[*].id
  }

  depends_on = [
    aws_iam_role_policy.execution,
    aws_s3_bucket_public_access_block.source,
    aws_route_table_association.private,
  ]
}
