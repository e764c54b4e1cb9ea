# The stateless layer: the network, the MWAA source bucket, the execution role, the MWAA
# environment and its alarms. It can be destroyed and rebuilt at will: the lake, the secrets and
# the alert channels live in terraform/stateful, which this layer reads (remote state).
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
