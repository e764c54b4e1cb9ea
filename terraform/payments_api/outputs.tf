output "ecr_repository_url" {
  description = "URL of the image repository: the deploy pushes docker/payments_api/Dockerfile to <this>:<commit sha>."
  value       = aws_ecr_repository.api.repository_url
}

output "ecr_repository_name" {
  description = "Name of the image repository (aws ecr describe-images --repository-name <this>)."
  value       = aws_ecr_repository.api.name
}

output "image" {
  description = "The image the service runs: the repository URL and the immutable tag of image_tag."
  value       = local.image
}

output "api_url" {
  description = "Base URL of the API on the load balancer's own name (the certificate's host name is what clients use)."
  value       = "https://${aws_lb.api.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the internal load balancer: point the certificate's host name at it (CNAME or alias)."
  value       = aws_lb.api.dns_name
}

output "alb_zone_id" {
  description = "Route 53 hosted zone id of the load balancer, for an alias record."
  value       = aws_lb.api.zone_id
}

output "cluster_name" {
  description = "Name of the ECS cluster (aws ecs update-service --cluster <this> --service <service_name> --force-new-deployment)."
  value       = aws_ecs_cluster.api.name
}

output "service_name" {
  description = "Name of the ECS service of the API."
  value       = aws_ecs_service.api.name
}

output "task_definition_arn" {
  description = "ARN of the task definition revision the service runs."
  value       = aws_ecs_task_definition.api.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the API's tasks (uvicorn access log and warehouse errors)."
  value       = aws_cloudwatch_log_group.api.name
}

output "warehouse_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the API's read-only warehouse login."
  value       = aws_secretsmanager_secret.warehouse.arn
}

output "task_security_group_id" {
  description = "ID of the API tasks' security group (allow it in the warehouse's firewall on 5432)."
  value       = aws_security_group.task.id
}

output "kms_key_arn" {
  description = "ARN of this layer's KMS key (image repository, warehouse secret, logs)."
  value       = aws_kms_key.api.arn
}

output "alb_access_log_bucket" {
  description = "Name of the bucket receiving the load balancer's access logs."
  value       = aws_s3_bucket.alb_logs.bucket
}
