# The origin module: an ECS cluster and a Fargate service running `origin serve`
# behind the ALB's target group, with target-tracking autoscaling between 1 and
# 10 tasks and logs in CloudWatch.

data "aws_region" "current" {}

locals {
  container_name = "origin"
  min_capacity   = var.autoscaling_enabled ? var.autoscaling_min : var.desired_count
  max_capacity   = var.autoscaling_enabled ? var.autoscaling_max : var.desired_count
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "origin" {
  name              = "/ecs/${var.name}/origin"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- IAM: the execution role pulls the image and reads the secrets; the task
# role is what the running origin may do (nothing, unless Keyspaces needs it).

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-origin-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "read_secrets" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = var.secret_arns
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "read_secrets" {
  count = length(var.secret_arns) > 0 ? 1 : 0

  name   = "read-origin-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.read_secrets.json
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-origin-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "task" {
  count = var.task_role_policy_json == null ? 0 : 1

  name   = "origin-runtime"
  role   = aws_iam_role.task.id
  policy = var.task_role_policy_json
}

# --- Network: only the ALB reaches the tasks, on the container port.

resource "aws_security_group" "tasks" {
  name        = "${var.name}-origin-tasks"
  description = "Origin tasks: the container port from the ALB only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-origin-tasks" }
}

resource "aws_vpc_security_group_ingress_rule" "from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "HTTP from the ALB"
  referenced_security_group_id = var.alb_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = var.alb_security_group_id
  description                  = "ALB to origin tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

# The tasks need HTTPS out (ECR, Secrets Manager, CloudWatch Logs) and, with the
# Cassandra backend, Keyspaces on 9142; the database and cache rules are added
# by those modules, which allow exactly this group in.
resource "aws_vpc_security_group_egress_rule" "https_out" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs (ECR, Secrets Manager, CloudWatch Logs)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "keyspaces_out" {
  count = var.keyspaces_egress ? 1 : 0

  security_group_id = aws_security_group.tasks.id
  description       = "Amazon Keyspaces (CQL over TLS)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 9142
  to_port           = 9142
}

# --- The task and the service.

resource "aws_ecs_task_definition" "origin" {
  family                   = "${var.name}-origin"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # A writable /tmp on task storage, because the root file system is read-only.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = local.container_name
      image                  = var.image
      essential              = true
      command                = ["serve"]
      readonlyRootFilesystem = true
      user                   = "10001:10001"
      portMappings = [
        { containerPort = var.container_port, protocol = "tcp" }
      ]
      environment = [
        for key, value in merge(var.environment, {
          ORIGIN_LISTEN = "0.0.0.0:${var.container_port}"
        }) : { name = key, value = value }
      ]
      secrets = [
        for key, value_from in var.secrets : { name = key, valueFrom = value_from }
      ]
      mountPoints = [
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }
      ]
      ulimits = [
        { name = "nofile", softLimit = 65536, hardLimit = 65536 }
      ]
      healthCheck = {
        command     = ["CMD", "http-probe", tostring(var.container_port), "/healthz"]
        interval    = 10
        timeout     = 3
        retries     = 3
        startPeriod = 30
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.origin.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = "origin"
        }
      }
    }
  ])
}

resource "aws_ecs_service" "origin" {
  name             = "origin"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.origin.arn
  desired_count    = var.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  # `serve` runs migrations before it listens; give it time before the ALB's
  # health checks count.
  health_check_grace_period_seconds = 60
  enable_execute_command            = false
  propagate_tags                    = "SERVICE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = var.target_group_arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # Application Auto Scaling owns the running count after creation.
  lifecycle {
    ignore_changes = [desired_count]
  }
}

resource "aws_appautoscaling_target" "origin" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.origin.name}"
  min_capacity       = local.min_capacity
  max_capacity       = local.max_capacity
}

resource "aws_appautoscaling_policy" "cpu" {
  count = var.autoscaling_enabled ? 1 : 0

  name               = "${var.name}-origin-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.origin.service_namespace
  scalable_dimension = aws_appautoscaling_target.origin.scalable_dimension
  resource_id        = aws_appautoscaling_target.origin.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  count = var.autoscaling_enabled && var.requests_per_target > 0 ? 1 : 0

  name               = "${var.name}-origin-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.origin.service_namespace
  scalable_dimension = aws_appautoscaling_target.origin.scalable_dimension
  resource_id        = aws_appautoscaling_target.origin.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${var.alb_arn_suffix}/${var.target_group_arn_suffix}"
    }
  }
}
