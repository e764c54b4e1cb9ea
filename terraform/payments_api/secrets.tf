# The API's warehouse login, in Secrets Manager. ECS reads it when a task starts and hands each
# field to the container as libpq's own environment variable (PGHOST, PGPORT, PGDATABASE, PGUSER,
# PGPASSWORD; ecs.tf), so the password is never part of a URL, the task definition or the state.
# Written from an ephemeral, sensitive variable through a write-only argument.

locals {
  # The secret's JSON keys: libpq's connection parameter names.
  warehouse_secret_value = jsonencode({
    host     = var.warehouse_readonly.host
    port     = tostring(var.warehouse_readonly.port)
    dbname   = var.warehouse_readonly.database
    user     = var.warehouse_readonly.username
    password = var.warehouse_readonly.password
  })
}

resource "aws_secretsmanager_secret" "warehouse" {
  #checkov:skip=CKV2_AWS_57:The read-only role's password belongs to the warehouse owner, who rotates it and bumps warehouse_secret_version; a rotation Lambda for an external PostgreSQL is out of this project's reach.
  name                    = "${local.name}/payments-api/warehouse"
  description             = "Warehouse login (read-only role) of the payments API of ${local.name}"
  kms_key_id              = aws_kms_key.api.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "warehouse" {
  secret_id                = aws_secretsmanager_secret.warehouse.id
  secret_string_wo         = local.warehouse_secret_value
  secret_string_wo_version = var.warehouse_secret_version
}
