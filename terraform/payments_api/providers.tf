provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# The account Elastic Load Balancing delivers access logs from in this region (regions opened
# before August 2022, such as eu-west-2); newer regions use the log delivery service principal.
data "aws_elb_service_account" "this" {}

# What terraform/stateful created: the access-log bucket and the alerts topic ...
data "terraform_remote_state" "stateful" {
  backend = "s3"

  config = {
    bucket = var.state_bucket
    key    = var.stateful_state_key
    region = coalesce(var.state_region, var.aws_region)
  }
}

# ... and terraform/mwaa: the VPC and the private subnets (routed through its NAT gateways).
data "terraform_remote_state" "mwaa" {
  backend = "s3"

  config = {
    bucket = var.state_bucket
    key    = var.mwaa_state_key
    region = coalesce(var.state_region, var.aws_region)
  }
}

locals {
  name       = "${var.project}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = var.aws_region
  stateful   = data.terraform_remote_state.stateful.outputs
  mwaa       = data.terraform_remote_state.mwaa.outputs

  # Load balancer and target group names take at most 32 characters.
  short_name = trimsuffix(substr("${local.name}-payments-api", 0, 32), "-")

  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
    Layer       = "payments_api"
    ManagedBy   = "terraform"
  })
}
