# The MWAA source bucket: dags/ (totes_etl.py, include/, .airflowignore) is synced by the deploy
# workflow from the artifact of scripts/package_mwaa.py; requirements.txt and plugins.zip are
# uploaded here because the environment must name their object versions (so the artifact is
# built before this layer is planned: make package).

locals {
  source_bucket = "${local.name}-mwaa-${local.account_id}"
  # The repository's requirements.txt: the same file the artifact carries (tests/test_packaging.py).
  requirements_file = "${path.module}/../../requirements.txt"
  plugins_file      = "${path.module}/../../dist/mwaa/plugins.zip"
}

resource "aws_s3_bucket" "source" {
  #checkov:skip=CKV_AWS_144:The bucket holds only what the repository builds; a redeploy restores it in any region.
  #checkov:skip=CKV2_AWS_62:MWAA polls the bucket itself; no event consumer is needed.
  bucket = local.source_bucket
}

resource "aws_s3_bucket_ownership_controls" "source" {
  bucket = aws_s3_bucket.source.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "source" {
  bucket                  = aws_s3_bucket.source.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "source" {
  bucket = aws_s3_bucket.source.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "source" {
  bucket = aws_s3_bucket.source.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.mwaa.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "source" {
  bucket        = aws_s3_bucket.source.id
  target_bucket = local.stateful.access_log_bucket
  target_prefix = "mwaa-source/"
}

resource "aws_s3_bucket_lifecycle_configuration" "source" {
  bucket = aws_s3_bucket.source.id

  rule {
    id     = "noncurrent-versions-and-uploads"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.source_bucket_noncurrent_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.source]
}

resource "aws_s3_bucket_policy" "source" {
  bucket = aws_s3_bucket.source.id
  policy = data.aws_iam_policy_document.source_tls_only.json

  depends_on = [aws_s3_bucket_public_access_block.source]
}

data "aws_iam_policy_document" "source_tls_only" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.source.arn, "${aws_s3_bucket.source.arn}/*"]

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

# plugins/ as scripts/package_mwaa.py zips it (dist/mwaa/plugins.zip, built before apply): the
# health page's plugin, which the api-server mounts in the Airflow UI.
resource "aws_s3_object" "plugins" {
  bucket       = aws_s3_bucket.source.id
  key          = "plugins.zip"
  source       = local.plugins_file
  source_hash  = filemd5(local.plugins_file)
  content_type = "application/zip"
  kms_key_id   = aws_kms_key.mwaa.arn

  depends_on = [aws_s3_bucket_versioning.source]
}

resource "aws_s3_object" "requirements" {
  bucket       = aws_s3_bucket.source.id
  key          = "requirements.txt"
  source       = local.requirements_file
  source_hash  = filemd5(local.requirements_file)
  content_type = "text/plain"
  kms_key_id   = aws_kms_key.mwaa.arn

  depends_on = [aws_s3_bucket_versioning.source]
}
