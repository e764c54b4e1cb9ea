# The payments API layer: the finance payments API (payments_api/) as an ECS Fargate service
# behind an internal Application Load Balancer, in the private subnets of terraform/mwaa's VPC,
# with its image repository, its warehouse credentials and its logs. It reads what it needs from
# the states of terraform/stateful and terraform/mwaa, and can be destroyed and rebuilt without
# touching either (docs/deployment.md, "terraform/payments_api").
terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # Partial configuration: bucket, key and region come from -backend-config (see
  # backend.hcl.example and docs/deployment.md); nothing account-specific lives here.
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}
