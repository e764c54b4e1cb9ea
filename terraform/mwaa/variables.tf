# ------------------------------------------------------------------------------------------
# Naming and placement
# ------------------------------------------------------------------------------------------

variable "project" {
  description = "Project name: the first part of every resource name (as in terraform/stateful)."
  type        = string
  default     = "totes-etl"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "project must be 2-21 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "Deployment stage (dev, staging, prod): the second part of every resource name (as in terraform/stateful)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters or digits, starting with a letter."
  }
}

variable "aws_region" {
  description = "AWS region of every resource (the same as terraform/stateful's)."
  type        = string
  default     = "eu-west-2"
}

variable "tags" {
  description = "Extra tags for every resource (Project, Environment, Layer and ManagedBy are always set)."
  type        = map(string)
  default     = {}
}

# ------------------------------------------------------------------------------------------
# Where terraform/stateful keeps its state (read through terraform_remote_state)
# ------------------------------------------------------------------------------------------

variable "state_bucket" {
  description = "S3 bucket holding the Terraform states (the bucket of both layers' backend.hcl)."
  type        = string
}

variable "stateful_state_key" {
  description = "Key of terraform/stateful's state in state_bucket (its backend.hcl key)."
  type        = string
}

variable "state_region" {
  description = "Region of state_bucket; null = aws_region."
  type        = string
  default     = null
}

# ------------------------------------------------------------------------------------------
# Network
# ------------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the environment's VPC (two public subnets for the NAT gateways, two private ones for MWAA)."
  type        = string
  default     = "10.20.0.0/16"
}

variable "availability_zone_suffixes" {
  description = "The two availability zones of the environment, as suffixes of aws_region (MWAA needs exactly two private subnets in two zones)."
  type        = list(string)
  default     = ["a", "b"]

  validation {
    condition     = length(var.availability_zone_suffixes) == 2
    error_message = "MWAA takes exactly two subnets: give two zone suffixes."
  }
}

variable "single_nat_gateway" {
  description = "true: one NAT gateway for both private subnets (cheaper); false: one per availability zone (survives an AZ outage)."
  type        = bool
  default     = true
}

variable "database_cidrs" {
  description = "CIDR blocks of the totesys and warehouse PostgreSQL servers: the only destinations of port 5432 the environment may reach."
  type        = list(string)

  validation {
    condition     = length(var.database_cidrs) > 0 && alltrue([for c in var.database_cidrs : can(cidrhost(c, 0))])
    error_message = "database_cidrs needs at least one valid CIDR block."
  }
}

variable "webserver_allowed_cidrs" {
  description = "CIDR blocks (VPN, bastion, peered networks) allowed to reach the Airflow UI's private endpoint on 443; empty = only from inside the environment's security group."
  type        = list(string)
  default     = []
}

variable "smtp_port" {
  description = "Port of the SMTP server of the smtp_default connection (SES: 587, STARTTLS)."
  type        = number
  default     = 587
}

variable "flow_log_retention_days" {
  description = "Days the VPC flow logs are kept in CloudWatch Logs."
  type        = number
  default     = 365
}

# ------------------------------------------------------------------------------------------
# The MWAA environment
# ------------------------------------------------------------------------------------------

variable "environment_class" {
  description = "MWAA environment class (mw1.micro, mw1.small, mw1.medium, mw1.large, ...)."
  type        = string
  default     = "mw1.small"
}

variable "min_workers" {
  description = "Minimum number of Celery workers."
  type        = number
  default     = 1
}

variable "max_workers" {
  description = "Maximum number of Celery workers MWAA scales up to."
  type        = number
  default     = 3
}

variable "schedulers" {
  description = "Number of schedulers (2 or more for high availability)."
  type        = number
  default     = 2
}

variable "webserver_access_mode" {
  description = "PRIVATE_ONLY: the Airflow UI is reachable from inside the VPC only (VPN, bastion, Client VPN); PUBLIC_ONLY: from the internet, still behind IAM sign-in."
  type        = string
  default     = "PRIVATE_ONLY"

  validation {
    condition     = contains(["PRIVATE_ONLY", "PUBLIC_ONLY"], var.webserver_access_mode)
    error_message = "webserver_access_mode is PRIVATE_ONLY or PUBLIC_ONLY."
  }
}

variable "log_level" {
  description = "Level of every Airflow component's CloudWatch logs (DEBUG, INFO, WARNING, ERROR, CRITICAL)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level is one of DEBUG, INFO, WARNING, ERROR, CRITICAL."
  }
}

variable "weekly_maintenance_window_start" {
  description = "Start of MWAA's weekly maintenance window, DAY:HH:MM in UTC."
  type        = string
  default     = "SUN:03:00"
}

variable "source_bucket_noncurrent_days" {
  description = "Days replaced DAG files and requirements versions are kept in the source bucket."
  type        = number
  default     = 90
}

# ------------------------------------------------------------------------------------------
# Alarms
# ------------------------------------------------------------------------------------------

variable "alarm_period_seconds" {
  description = "Period of the failed-run alarm: it fires when any totes_etl run failed within one period."
  type        = number
  default     = 900
}

variable "warehouse_asset_location" {
  description = "The warehouse as its Airflow Assets name it, host:port/database (the host, port and database of the warehouse_db secret; not a secret). Empty: the connection id stands for the host (include/assets.py)."
  type        = string
  default     = ""

  validation {
    condition     = var.warehouse_asset_location == "" || can(regex("^[^:/]+(:[0-9]+)?/[^/]+$", var.warehouse_asset_location))
    error_message = "warehouse_asset_location must be host[:port]/database."
  }
}
