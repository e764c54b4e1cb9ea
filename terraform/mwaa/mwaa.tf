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
  plugins_s3_path                = aws_s3_object.plugins.key
  plugins_s3_object_version      = aws_s3_object.plugins.version_id

  webserver_access_mode           = var.webserver_access_mode
  weekly_maintenance_window_start = var.weekly_maintenance_window_start

  # [totes]: what the Assets of the DAGs name, read when a DAG is parsed (include/assets.py). MWAA
  # gives every component its configuration options as AIRFLOW__<SECTION>__<KEY> variables;
  # parsing may read no secret, so these repeat the buckets and schema of the variables.
  airflow_configuration_options = merge(
    {
      "secrets.backend"        = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
      "secrets.backend_kwargs" = jsonencode(local.secrets_backend_kwargs)
      "core.load_examples"     = "False"
      "totes.ingestion_bucket" = local.stateful.ingestion_bucket
      "totes.processed_bucket" = local.stateful.processed_bucket
      "totes.warehouse_schema" = local.stateful.warehouse_schema
      # The sales targets feed is picked up as files land (dags/totes_files.py, include/feeds.py).
      "totes.sales_targets_queue_url" = local.stateful.sales_targets_queue_url
    },
    var.warehouse_asset_location == "" ? {} : { "totes.warehouse" = var.warehouse_asset_location },
  )

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
