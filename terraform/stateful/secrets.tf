# The Airflow connections and variables of include/config.py, where MWAA's secrets backend
# (airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend, configured in
# terraform/mwaa) finds them:
#   airflow/connections/<conn id>   JSON of the connection (conn_type, host, login, ...)
#   airflow/variables/<name>        the variable's value
# Credentials arrive as ephemeral, sensitive variables and are written with write-only
# arguments: they are sent to Secrets Manager and never stored in the Terraform state.

locals {
  connections_prefix = "airflow/connections"
  variables_prefix   = "airflow/variables"

  # include/config.py: SOURCE_CONN_ID, WAREHOUSE_CONN_ID, HEALTH_CONN_ID, SMTP_CONN_ID (credentials) ...
  credential_connections = toset(["totesys_db", "warehouse_db", "warehouse_health", "smtp_default"])
  # ... and the connections that hold no credential: AWS_CONN_ID (on MWAA the execution role
  # authenticates; only the region) and FX_API_CONN_ID (totes_fx's public rates API: its base URL).
  plain_connections = {
    aws_default = jsonencode({
      conn_type = "aws"
      extra     = { region_name = var.aws_region }
    })
    fx_api = jsonencode({
      conn_type = "http"
      host      = var.fx_api_url
    })
  }

  # include/config.py VARIABLES.
  airflow_variables = {
    totes_ingestion_bucket = aws_s3_bucket.lake["ingestion"].bucket
    totes_processed_bucket = aws_s3_bucket.lake["processed"].bucket
    totes_warehouse_schema = var.warehouse_schema
    totes_alert_emails     = join(",", var.alert_emails)
    totes_targets_bucket   = var.sales_targets_bucket_name
    totes_targets_prefix   = var.sales_targets_prefix
  }

  # Ephemeral: built from the ephemeral variables, only ever used in write-only arguments.
  connection_values = {
    totesys_db = jsonencode({
      conn_type = "postgres"
      host      = var.totesys_db.host
      port      = var.totesys_db.port
      schema    = var.totesys_db.database
      login     = var.totesys_db.username
      password  = var.totesys_db.password
      extra     = { sslmode = "require" }
    })
    warehouse_db = jsonencode({
      conn_type = "postgres"
      host      = var.warehouse_db.host
      port      = var.warehouse_db.port
      schema    = var.warehouse_db.database
      login     = var.warehouse_db.username
      password  = var.warehouse_db.password
      extra     = { sslmode = "require" }
    })
    # the health page's read-only role (include.health.grant_reader)
    warehouse_health = jsonencode({
      conn_type = "postgres"
      host      = var.warehouse_health.host
      port      = var.warehouse_health.port
      schema    = var.warehouse_health.database
      login     = var.warehouse_health.username
      password  = var.warehouse_health.password
      extra     = { sslmode = "require" }
    })
    smtp_default = jsonencode({
      conn_type = "smtp"
      host      = coalesce(var.smtp.host, "email-smtp.${var.aws_region}.amazonaws.com")
      port      = var.smtp.port
      login     = var.smtp.username
      password  = var.smtp.password
      extra     = { from_email = var.alert_sender, disable_ssl = true, disable_tls = false }
    })
  }
}

resource "aws_secretsmanager_secret" "connection" {
  for_each = local.credential_connections

  #checkov:skip=CKV2_AWS_57:The credentials belong to the totesys, warehouse and SES owners; they rotate them and bump connection_secrets_version. A rotation Lambda per engine is out of this project's reach.
  name                    = "${local.connections_prefix}/${each.key}"
  description             = "Airflow connection ${each.key} of ${local.name}"
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "connection" {
  for_each = local.credential_connections

  secret_id                = aws_secretsmanager_secret.connection[each.key].id
  secret_string_wo         = local.connection_values[each.key]
  secret_string_wo_version = var.connection_secrets_version
}

resource "aws_secretsmanager_secret" "plain_connection" {
  for_each = local.plain_connections

  #checkov:skip=CKV2_AWS_57:Holds no credential (a region, a public API's URL): nothing to rotate.
  name                    = "${local.connections_prefix}/${each.key}"
  description             = "Airflow connection ${each.key} of ${local.name} (no credential)"
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "plain_connection" {
  for_each = local.plain_connections

  secret_id     = aws_secretsmanager_secret.plain_connection[each.key].id
  secret_string = each.value
}

resource "aws_secretsmanager_secret" "variable" {
  for_each = local.airflow_variables

  #checkov:skip=CKV2_AWS_57:Airflow variables are configuration (bucket names, schema, recipients), not credentials.
  name                    = "${local.variables_prefix}/${each.key}"
  description             = "Airflow variable ${each.key} of ${local.name}"
  kms_key_id              = aws_kms_key.data.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "variable" {
  for_each = local.airflow_variables

  secret_id     = aws_secretsmanager_secret.variable[each.key].id
  secret_string = each.value
}
