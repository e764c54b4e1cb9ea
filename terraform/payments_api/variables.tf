# ------------------------------------------------------------------------------------------
# Naming and placement
# ------------------------------------------------------------------------------------------

variable "project" {
  description = "Project name: the first part of every resource name (as in the other layers)."
  type        = string
  default     = "totes-etl"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "project must be 2-21 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "Deployment stage (dev, staging, prod): the second part of every resource name (as in the other layers)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters or digits, starting with a letter."
  }
}

variable "aws_region" {
  description = "AWS region of every resource (the same as the other layers')."
  type        = string
  default     = "eu-west-2"
}

variable "tags" {
  description = "Extra tags for every resource (Project, Environment, Layer and ManagedBy are always set)."
  type        = map(string)
  default     = {}
}

# ------------------------------------------------------------------------------------------
# Where the other layers keep their states (read through terraform_remote_state)
# ------------------------------------------------------------------------------------------

variable "state_bucket" {
  description = "S3 bucket holding the Terraform states (the bucket of every layer's backend.hcl)."
  type        = string
}

variable "stateful_state_key" {
  description = "Key of terraform/stateful's state in state_bucket (access-log bucket, alerts topic)."
  type        = string
}

variable "mwaa_state_key" {
  description = "Key of terraform/mwaa's state in state_bucket (the VPC and private subnets the API runs in)."
  type        = string
}

variable "state_region" {
  description = "Region of state_bucket; null = aws_region."
  type        = string
  default     = null
}

# ------------------------------------------------------------------------------------------
# The image and the service
# ------------------------------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the image in this layer's ECR repository to run: the deploy pushes docker/payments_api/Dockerfile as the commit SHA (tags are immutable)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid, immutable image tag (e.g. the commit SHA), never latest."
  }
}

variable "images_to_keep" {
  description = "Number of images the repository keeps (older ones expire); rollback targets must be among them."
  type        = number
  default     = 30
}

variable "desired_count" {
  description = "Number of API tasks, spread over the two private subnets (2: one per availability zone)."
  type        = number
  default     = 2
}

variable "task_cpu" {
  description = "CPU units of a task (256 = 0.25 vCPU; a Fargate size together with task_memory)."
  type        = number
  default     = 256
}

variable "task_memory" {
  description = "Memory of a task in MiB (a Fargate size together with task_cpu)."
  type        = number
  default     = 512
}

variable "log_retention_days" {
  description = "Days the API's CloudWatch logs are kept (at least a year)."
  type        = number
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "log_retention_days must be at least 365."
  }
}

# ------------------------------------------------------------------------------------------
# The warehouse (read-only role of payments_api/sql/readonly_role.sql)
# Ephemeral and sensitive: written with a write-only argument, never stored in the state.
# ------------------------------------------------------------------------------------------

variable "warehouse_readonly" {
  description = "The API's warehouse login: a role with SELECT on fact_payment, dim_currency and dim_counterparty only (payments_api/sql/readonly_role.sql)."
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

variable "warehouse_secret_version" {
  description = "Version of the warehouse login written to Secrets Manager: increase it to write a new warehouse_readonly (the service then restarts its tasks with it)."
  type        = number
  default     = 1
}

variable "warehouse_schema" {
  description = "The schema of the star schema (TOTES_WAREHOUSE_SCHEMA): the pipeline's totes_warehouse_schema, e.g. project_team_3."
  type        = string
  default     = "public"
}

variable "warehouse_cidrs" {
  description = "CIDR blocks of the warehouse PostgreSQL server: the only destinations of port 5432 the API may reach."
  type        = list(string)

  validation {
    condition     = length(var.warehouse_cidrs) > 0 && alltrue([for c in var.warehouse_cidrs : can(cidrhost(c, 0))])
    error_message = "warehouse_cidrs needs at least one valid CIDR block."
  }
}

variable "secret_recovery_window_days" {
  description = "Days the deleted warehouse secret can still be restored (0 deletes at once; 7-30 otherwise)."
  type        = number
  default     = 7
}

# ------------------------------------------------------------------------------------------
# The internal load balancer
# ------------------------------------------------------------------------------------------

variable "client_cidrs" {
  description = "CIDR blocks allowed to call the API on 443 (finance's network over VPN or peering, a bastion); the load balancer is internal either way."
  type        = list(string)

  validation {
    condition     = length(var.client_cidrs) > 0 && alltrue([for c in var.client_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "client_cidrs needs at least one valid CIDR block, and not 0.0.0.0/0."
  }
}

variable "certificate_arn" {
  description = "ARN of the ACM certificate of the API's host name, served by the HTTPS listener (point that name at the alb_dns_name output)."
  type        = string
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener (TLS 1.3 and 1.2 only by default)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion (set false before destroying this layer)."
  type        = bool
  default     = true
}

variable "access_log_expiration_days" {
  description = "Days the load balancer's access logs are kept."
  type        = number
  default     = 365
}

# ------------------------------------------------------------------------------------------
# Alarms (on terraform/stateful's alerts topic)
# ------------------------------------------------------------------------------------------

variable "alarm_period_seconds" {
  description = "Period of the API's alarms (no healthy task; answers 5xx, e.g. the warehouse is unreachable)."
  type        = number
  default     = 300
}

variable "error_alarm_threshold" {
  description = "5xx answers of the API within one alarm period that raise the error alarm."
  type        = number
  default     = 5
}

# ------------------------------------------------------------------------------------------
# Who may read payments (payments_api/auth.py): OIDC sign-in at the load balancer
# ------------------------------------------------------------------------------------------

variable "oidc" {
  description = "The company's identity provider (an OIDC client registered for the API's URL, https://<name>/oauth2/idpresponse as its redirect): endpoints, client id, scope, session length, and the claim of the user-info answer that lists the user's groups."
  type = object({
    issuer                 = string
    authorization_endpoint = string
    token_endpoint         = string
    user_info_endpoint     = string
    client_id              = string
    scope                  = optional(string, "openid email groups")
    session_timeout        = optional(number, 28800)
    groups_claim           = optional(string, "groups")
  })

  validation {
    condition     = alltrue([for u in [var.oidc.issuer, var.oidc.authorization_endpoint, var.oidc.token_endpoint, var.oidc.user_info_endpoint] : startswith(u, "https://")])
    error_message = "Every OIDC endpoint must be https://."
  }
}

variable "oidc_client_secret" {
  description = "The OIDC client's secret (the load balancer keeps it; never in code or tfvars committed)."
  type        = string
  sensitive   = true
}

variable "oidc_endpoint_cidrs" {
  description = "Where the load balancer may reach the identity provider's token and user-info endpoints over HTTPS (its public ranges; 0.0.0.0/0 when they are not published)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "reader_group" {
  description = "The identity provider's group whose members may read payments (TOTES_PAYMENTS_API_READER_GROUP)."
  type        = string
  default     = "finance"
}
