# The internal Application Load Balancer in front of the tasks: in the two private subnets of
# terraform/mwaa's VPC, reachable only from inside it (and from networks joined to it: VPN,
# peering), HTTPS only with TLS 1.2+, invalid headers dropped, every request logged.

resource "aws_lb" "api" {
  name                       = local.short_name
  internal                   = true
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = local.mwaa.private_subnet_ids
  drop_invalid_header_fields = true
  desync_mitigation_mode     = "defensive"
  enable_deletion_protection = var.deletion_protection

  access_logs {
    bucket  = aws_s3_bucket.alb_logs.id
    prefix  = "payments-api"
    enabled = true
  }

  depends_on = [aws_s3_bucket_policy.alb_logs]
}

# TLS ends at the load balancer: the hop to a task stays inside the private subnets, and the
# task's security group admits only the load balancer.
resource "aws_lb_target_group" "api" {
  name                 = local.short_name
  port                 = local.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = local.mwaa.vpc_id
  deregistration_delay = 30

  # Liveness: the API answers (OpenAPI document, no database). Whether the warehouse answers is
  # /health's business, watched by the 5xx alarm: a warehouse outage must not make ECS replace
  # healthy tasks, which answer 503 with Retry-After meanwhile (docs/payments_api.md).
  health_check {
    path                = "/openapi.json"
    matcher             = "200"
    interval            = 30
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  # Users sign in with the company's identity provider (OIDC) before any request reaches a task;
  # the balancer then forwards their claims signed (x-amzn-oidc-data), which the service checks
  # and reads the reader group from (payments_api/auth.py).
  default_action {
    type  = "authenticate-oidc"
    order = 1

    authenticate_oidc {
      issuer                     = var.oidc.issuer
      authorization_endpoint     = var.oidc.authorization_endpoint
      token_endpoint             = var.oidc.token_endpoint
      user_info_endpoint         = var.oidc.user_info_endpoint
      client_id                  = var.oidc.client_id
      client_secret              = var.oidc_client_secret
      scope                      = var.oidc.scope
      session_timeout            = var.oidc.session_timeout
      on_unauthenticated_request = "authenticate"
    }
  }

  default_action {
    type             = "forward"
    order            = 2
    target_group_arn = aws_lb_target_group.api.arn
  }
}

# ------------------------------------------------------------------------------------------
# Access logs of the load balancer (who called the finance API, when, with what answer)
# ------------------------------------------------------------------------------------------

locals {
  alb_log_bucket = "${local.name}-api-lb-logs-${local.account_id}"
}

resource "aws_s3_bucket" "alb_logs" {
  #checkov:skip=CKV_AWS_144:Access logs are audit data of this region only; replication adds cost, not recovery.
  #checkov:skip=CKV2_AWS_62:Nothing consumes log delivery events.
  #checkov:skip=CKV_AWS_145:Load balancer access logs are delivered only to buckets encrypted with SSE-S3 (AES256), not SSE-KMS.
  bucket = local.alb_log_bucket
}

resource "aws_s3_bucket_ownership_controls" "alb_logs" {
  bucket = aws_s3_bucket.alb_logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "alb_logs" {
  bucket                  = aws_s3_bucket.alb_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "alb_logs" {
  bucket = aws_s3_bucket.alb_logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "alb_logs" {
  bucket = aws_s3_bucket.alb_logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# The bucket's own accesses go to terraform/stateful's access-log bucket, like every bucket's.
resource "aws_s3_bucket_logging" "alb_logs" {
  bucket        = aws_s3_bucket.alb_logs.id
  target_bucket = local.stateful.access_log_bucket
  target_prefix = "payments-api-lb-logs/"
}

resource "aws_s3_bucket_lifecycle_configuration" "alb_logs" {
  bucket = aws_s3_bucket.alb_logs.id

  rule {
    id     = "expire-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.access_log_expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.alb_logs]
}

resource "aws_s3_bucket_policy" "alb_logs" {
  bucket = aws_s3_bucket.alb_logs.id
  policy = data.aws_iam_policy_document.alb_logs.json

  depends_on = [aws_s3_bucket_public_access_block.alb_logs]
}

data "aws_iam_policy_document" "alb_logs" {
  statement {
    sid       = "LoadBalancerLogDelivery"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["arn:${local.partition}:s3:::${local.alb_log_bucket}/payments-api/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.this.arn]
    }
  }

  statement {
    sid       = "LoadBalancerLogDeliveryService"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["arn:${local.partition}:s3:::${local.alb_log_bucket}/payments-api/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["logdelivery.elasticloadbalancing.amazonaws.com"]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = ["arn:${local.partition}:s3:::${local.alb_log_bucket}", "arn:${local.partition}:s3:::${local.alb_log_bucket}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
