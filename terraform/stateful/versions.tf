# The stateful layer: what must outlive any redeploy of Airflow (the data lake buckets, the
# encryption key, the secrets Airflow reads, the alert channels). Destroying terraform/mwaa
# never touches any of it.
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
