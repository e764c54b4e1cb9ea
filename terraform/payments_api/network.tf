# Two security groups in terraform/mwaa's VPC. The load balancer's admits HTTPS from
# client_cidrs only and talks only to the tasks and, over HTTPS, to the identity provider's token
# and user-info endpoints (oidc_endpoint_cidrs); the tasks' admits only the load balancer and
# talks only to HTTPS (ECR, Secrets Manager, CloudWatch Logs, through the VPC's NAT gateways) and
# the warehouse's PostgreSQL.

resource "aws_security_group" "alb" {
  name        = "${local.name}-payments-api-alb"
  description = "Payments API load balancer of ${local.name}: HTTPS in from client_cidrs, out to the API tasks only"
  vpc_id      = local.mwaa.vpc_id

  tags = { Name = "${local.name}-payments-api-alb" }
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = toset(var.client_cidrs)

  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "Payments API clients at ${each.value}"
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  referenced_security_group_id = aws_security_group.task.id
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  description                  = "To the payments API tasks"
}

resource "aws_vpc_security_group_egress_rule" "alb_to_identity_provider" {
  for_each = toset(var.oidc_endpoint_cidrs)

  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "The identity provider's token and user-info endpoints at ${each.value} (OIDC sign-in)"
}

resource "aws_security_group" "task" {
  name        = "${local.name}-payments-api-task"
  description = "Payments API tasks of ${local.name}: in from the load balancer only, out to HTTPS and the warehouse"
  vpc_id      = local.mwaa.vpc_id

  tags = { Name = "${local.name}-payments-api-task" }
}

resource "aws_vpc_security_group_ingress_rule" "task_from_alb" {
  security_group_id            = aws_security_group.task.id
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  description                  = "From the payments API load balancer"
}

resource "aws_vpc_security_group_egress_rule" "task_https" {
  security_group_id = aws_security_group.task.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "ECR, Secrets Manager and CloudWatch Logs, through the NAT gateway"
}

resource "aws_vpc_security_group_egress_rule" "task_warehouse" {
  for_each = toset(var.warehouse_cidrs)

  security_group_id = aws_security_group.task.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
  description       = "Warehouse PostgreSQL at ${each.value}"
}
