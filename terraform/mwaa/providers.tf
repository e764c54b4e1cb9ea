provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# Pinned by name (CKV_AWS_394): the subnets never move when AWS adds a zone to the region.
data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "zone-name"
    values = [for suffix in var.availability_zone_suffixes : "${var.aws_region}${suffix}"]
  }
}

# What terraform/stateful created: buckets, key, secrets, alerts topic.
data "terraform_remote_state" "stateful" {
  backend = "s3"

  config = {
    bucket = var.state_bucket
    key    = var.stateful_state_key
    region = coalesce(var.state_region, var.aws_region)
  }
}

locals {
  name       = "${var.project}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = var.aws_region
  stateful   = data.terraform_remote_state.stateful.outputs
  azs        = data.aws_availability_zones.available.names

  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
    Layer       = "mwaa"
    ManagedBy   = "terraform"
  })
}
