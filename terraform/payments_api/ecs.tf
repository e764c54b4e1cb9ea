# The API on ECS Fargate: no servers to patch, one task per availability zone by default, each
# in a private subnet without a public address, behind the internal load balancer (alb.tf).

locals {
  container_name = "payments-api"
  # payments_api's DEFAULT_PORT and the image's EXPOSE (docker/payments_api/Dockerfile).
  container_port = 8081
  # Always the repository's image, by its immutable tag (the commit the deploy built).
  image = "${aws_ecr_repository.api.repository_url}:${var.image_tag}"

  log_group_name = "/ecs/${local.name}/payments-api"
  log_group_arn  = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"

  # payments_api.settings: an empty libpq URL (every parameter comes from the PG* variables of
  # the secret below), TLS required, the schema of the star schema.
  container_environment = {
    TOTES_WAREHOUSE_URL     = "postgresql://"
    PGSSLMODE               = "require"
    TOTES_WAREHOUSE_SCHEMA  = var.warehouse_schema
    TOTES_PAYMENTS_API_PORT = tostring(local.container_port)

    # Who may read: the claims the load balancer signs after the OIDC sign-in (alb.tf).
    TOTES_PAYMENTS_API_AUTH         = "alb-oidc"
    TOTES_PAYMENTS_API_ALB_ARN      = aws_lb.api.arn
    TOTES_PAYMENTS_API_ALB_KEYS_URL = "https://public-keys.auth.elb.${local.region}.amazonaws.com"
    TOTES_PAYMENTS_API_GROUPS_CLAIM = var.oidc.groups_claim
    TOTES_PAYMENTS_API_READER_GROUP = var.reader_group

    # A new secret version changes the task definition, so ECS restarts the tasks with it.
    TOTES_WAREHOUSE_SECRET_VERSION = tostring(var.warehouse_secret_version)
  }

  # libpq environment variable = key of the warehouse secret's JSON (secrets.tf).
  container_secrets = {
    PGHOST     = "host"
    PGPORT     = "port"
    PGDATABASE = "dbname"
    PGUSER     = "user"
    PGPASSWORD = "password"
  }
}

resource "aws_ecs_cluster" "api" {
  name = "${local.name}-payments-api"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "api" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.api.arn
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${local.name}-payments-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # The root filesystem is read-only: /tmp is the task's own scratch space.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = local.container_name
      image                  = local.image
      essential              = true
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      privileged             = false
      command                = ["python", "-m", "payments_api", "--host", "0.0.0.0", "--port", tostring(local.container_port)]
      portMappings           = [{ containerPort = local.container_port, protocol = "tcp" }]
      environment            = [for k, v in local.container_environment : { name = k, value = v }]
      secrets                = [for k, v in local.container_secrets : { name = k, valueFrom = "${aws_secretsmanager_secret.warehouse.arn}:${v}::" }]
      mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      linuxParameters = {
        capabilities       = { drop = ["ALL"] }
        initProcessEnabled = true
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.api.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "payments-api"
        }
      }
    },
  ])

  depends_on = [aws_secretsmanager_secret_version.warehouse]
}

resource "aws_ecs_service" "api" {
  name                              = "payments-api"
  cluster                           = aws_ecs_cluster.api.id
  task_definition                   = aws_ecs_task_definition.api.arn
  desired_count                     = var.desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  enable_execute_command            = false
  propagate_tags                    = "SERVICE"
  health_check_grace_period_seconds = 30

  # terraform apply returns once the new tasks are healthy (or the deployment rolled back).
  wait_for_steady_state = true

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = local.mwaa.private_subnet_ids
    security_groups  = [aws_security_group.task.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = local.container_name
    container_port   = local.container_port
  }

  depends_on = [aws_lb_listener.https, aws_iam_role_policy.execution]
}
