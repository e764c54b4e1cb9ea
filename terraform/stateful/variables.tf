# ------------------------------------------------------------------------------------------
# Naming and placement
# ------------------------------------------------------------------------------------------

variable "project" {
  description = "Project name: the first part of every resource name."
  type        = string
  default     = "totes-etl"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "project must be 2-21 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "Deployment stage (dev, staging, prod): the second part of every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters or digits, starting with a letter."
  }
}

variable "aws_region" {
  description = "AWS region of every resource (the same as terraform/mwaa's)."
  type        = string
  default     = "eu-west-2"
}

variable "tags" {
  description = "Extra tags for every resource (Project, Environment, Layer and ManagedBy are always set)."
  type        = map(string)
  default     = {}
}

# ------------------------------------------------------------------------------------------
# Buckets
# ------------------------------------------------------------------------------------------

variable "ingestion_bucket_name" {
  description = "Name of the ingestion (raw lake) bucket; null = <project>-<environment>-ingestion-<account id>."
  type        = string
  default     = null
}

variable "processed_bucket_name" {
  description = "Name of the processed (star schema parquet) bucket; null = <project>-<environment>-processed-<account id>."
  type        = string
  default     = null
}

variable "infrequent_access_after_days" {
  description = "Days after which lake objects move to STANDARD_IA (objects under 128 KiB, like _state/, stay in STANDARD)."
  type        = number
  default     = 30

  validation {
    condition     = var.infrequent_access_after_days >= 30
    error_message = "S3 allows the STANDARD_IA transition after 30 days at the earliest."
  }
}

variable "ingestion_expiration_days" {
  description = "Days after which raw ingested parts and manifests expire; 0 keeps them forever. The processed bucket never expires current objects (it holds the _state/ of the joined dimensions)."
  type        = number
  default     = 0

  validation {
    condition     = var.ingestion_expiration_days == 0 || var.ingestion_expiration_days >= 90
    error_message = "ingestion_expiration_days must be 0 (keep forever) or at least 90."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced or deleted object version is kept in the versioned buckets before it expires."
  type        = number
  default     = 30
}

variable "access_log_expiration_days" {
  description = "Days the S3 server access logs of every bucket are kept."
  type        = number
  default     = 365
}

# ------------------------------------------------------------------------------------------
# Airflow connections (Secrets Manager, airflow/connections/<conn id>)
# Ephemeral and sensitive: written with write-only arguments, never stored in the state.
# ------------------------------------------------------------------------------------------

variable "totesys_db" {
  description = "The totesys_db connection: the totesys PostgreSQL source (read-only user)."
  type = object({
    host     = string
    port     = optional(number, 5432)
    database = string
    username = string
    password = string
  })
  sensitive = true
  ephemeral = true
}

variable "warehouse_db" {
  description = "The warehouse_db connection: the warehouse PostgreSQL (a user that may create tables in the warehouse schema)."
  type = object({
    host     = string
    port     = optional(number, 5432)
    database = string
    username = string
    password = string
  })
  sensitive = true
  ephemeral = true
}

variable "warehouse_health" {
  description = "The warehouse_health connection of the health page in the Airflow UI: the warehouse PostgreSQL as a role that may only read etl_stage_figures, etl_check_result and etl_quarantine (include.health.grant_reader)."
  type = object({
    host     = string
    port     = optional(number, 5432)
    database = string
    username = string
    password = string
  })
  sensitive = true
  ephemeral = true
}

variable "smtp" {
  description = "The smtp_default connection: SES SMTP endpoint and SMTP credentials (SES console, SMTP settings) used for the failure e-mails."
  type = object({
    host     = optional(string)
    port     = optional(number, 587)
    username = string
    password = string
  })
  sensitive = true
  ephemeral = true
}

variable "fx_api_url" {
  description = "The fx_api connection of totes_fx: base URL of a Frankfurter-compatible exchange-rate API (no credential)."
  type        = string
  default     = "https://api.frankfurter.app"
}

variable "connection_secrets_version" {
  description = "Version of the connection values written to Secrets Manager: increase it to write new values of totesys_db, warehouse_db or smtp."
  type        = number
  default     = 1
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once; 7-30 otherwise)."
  type        = number
  default     = 7
}

# ------------------------------------------------------------------------------------------
# Airflow variables (Secrets Manager, airflow/variables/<name>)
# ------------------------------------------------------------------------------------------

variable "warehouse_schema" {
  description = "Airflow variable totes_warehouse_schema: the warehouse schema totes_etl loads into (e.g. project_team_3)."
  type        = string
  default     = "public"
}

variable "alert_emails" {
  description = "Airflow variable totes_alert_emails (failure mails of each task) and the e-mail subscribers of the alerts SNS topic (CloudWatch alarms)."
  type        = list(string)

  validation {
    condition     = length(var.alert_emails) > 0
    error_message = "alert_emails needs at least one address."
  }
}

variable "alert_sender" {
  description = "SES identity the failure mails are sent from: the address include/alerts.py uses (FROM_ADDRESS), or its domain."
  type        = string
  default     = "totes-etl@terrifictotes.com"
}

# ------------------------------------------------------------------------------------------
# The sales targets feed (README "File feeds"): the sales department's own bucket
# ------------------------------------------------------------------------------------------

variable "sales_targets_bucket_name" {
  description = "Airflow variable totes_targets_bucket: the sales department's existing bucket the monthly targets land in (this layer only adds the notification of their prefix)."
  type        = string
}

variable "sales_targets_prefix" {
  description = "Airflow variable totes_targets_prefix: the key prefix of the targets files in that bucket (with its trailing slash)."
  type        = string
  default     = "sales-targets/"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$", var.sales_targets_prefix))
    error_message = "sales_targets_prefix must be a plain key prefix ending in a slash, e.g. sales-targets/."
  }
}
