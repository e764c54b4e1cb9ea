# The image repository: the deploy pushes docker/payments_api/Dockerfile here, tagged with the
# commit SHA. Tags are immutable (a tag always means the same image), every push is scanned for
# known vulnerabilities (the deploy stops on a CRITICAL finding), images are KMS-encrypted.
resource "aws_ecr_repository" "api" {
  name                 = "${local.name}/payments-api"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.api.arn
  }
}

resource "aws_ecr_lifecycle_policy" "api" {
  repository = aws_ecr_repository.api.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Keep the newest ${var.images_to_keep} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.images_to_keep
        }
        action = {
          type = "expire"
        }
      },
    ]
  })
}
