# The loadgen module: a Fargate task definition that runs `loadtest run` and
# then copies its JSON results (HdrHistogram histograms) to S3, where
# `loadtest merge` combines the files of all tasks without loss. Terraform
# prepares everything; the run itself is started by the `aws ecs run-task`
# command in the outputs, because a generator is a batch job, not a service.

data "aws_region" "current" {}

locals {
  results_dir = "/results"
}

# --- Results bucket

resource "aws_s3_bucket" "results" {
  #checkov:skip=CKV_AWS_18: holds only load-test result files written by our own tasks; access logging would add a second bucket for no audit value.
  #checkov:skip=CKV_AWS_144: results are reproducible measurements, not data worth replicating across regions.
  #checkov:skip=CKV2_AWS_62: nothing reacts to new result files; they are fetched and merged by hand.
  bucket_prefix = "${var.name}-loadgen-"
}

resource "aws_s3_bucket_ownership_controls" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "results" {
  bucket                  = aws_s3_bucket.results.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "results" {
  bucket = aws_s3_bucket.results.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "results" {
  bucket = aws_s3_bucket.results.id

  rule {
    id     = "expire-results"
    status = "Enabled"
    filter {}

    expiration {
      days = var.results_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_cloudwatch_log_group" "loadgen" {
  name              = "/ecs/${var.name}/loadgen"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- IAM

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
  name               = "${var.name}-loadgen-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "read_jwt_secret" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [coalesce(var.jwt_secret_arn, "arn:aws:secretsmanager:::secret:none")]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "read_jwt_secret" {
  count = var.jwt_secret_arn == null ? 0 : 1

  name   = "read-jwt-secret"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.read_jwt_secret.json
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-loadgen-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "write_results" {
  statement {
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.results.arn}/*"]
  }
  statement {
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "write_results" {
  name   = "write-results"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.write_results.json
}

# --- Network: no inbound traffic at all; HTTPS out to CloudFront and AWS APIs.

resource "aws_security_group" "loadgen" {
  #checkov:skip=CKV2_AWS_5: attached when the tasks start: `aws ecs run-task` in the run_command output names this group.
  name        = "${var.name}-loadgen"
  description = "Load generator tasks: HTTPS out only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-loadgen" }
}

resource "aws_vpc_security_group_egress_rule" "https_out" {
  security_group_id = aws_security_group.loadgen.id
  description       = "HTTPS to CloudFront, ECR, S3 and CloudWatch Logs"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# --- The task: `loadtest` runs to completion, then `upload` copies its file.

resource "aws_ecs_task_definition" "loadgen" {
  family                   = "${var.name}-loadgen"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "results"
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = "loadtest"
      image                  = var.image
      essential              = false
      readonlyRootFilesystem = true
      user                   = "10001:10001"
      entryPoint             = ["sh", "-c"]
      # Each task draws its own seed, so N tasks do not send the same sequence.
      command = [join(" ", concat([
        "exec loadtest run /usr/share/loadtest/scenarios/${var.scenario}.toml",
        "--target \"$TARGET\" --quiet",
        "--seed \"$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')\"",
        "--out ${local.results_dir}/result.json",
      ], [for arg in var.extra_args : format("'%s'", replace(arg, "'", ""))]))]
      environment = [
        { name = "TARGET", value = var.target_url },
      ]
      secrets = var.jwt_secret_arn == null ? [] : [
        { name = "JWT_SECRET", valueFrom = var.jwt_secret_arn },
      ]
      mountPoints = [
        { sourceVolume = "results", containerPath = local.results_dir, readOnly = false },
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
      ]
      ulimits = [
        { name = "nofile", softLimit = 65536, hardLimit = 65536 }
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.loadgen.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = "loadtest"
        }
      }
    },
    {
      name                   = "upload"
      image                  = var.uploader_image
      essential              = true
      readonlyRootFilesystem = true
      entryPoint             = ["sh", "-c"]
      # COMPLETE, not SUCCESS: a run whose thresholds failed (exit 99) still
      # has results worth keeping. The host name is unique per task.
      command = [
        "aws s3 cp ${local.results_dir}/result.json \"s3://$RESULTS_BUCKET/$RUN_ID/$(hostname).json\"",
      ]
      dependsOn = [
        { containerName = "loadtest", condition = "COMPLETE" },
      ]
      environment = [
        { name = "RESULTS_BUCKET", value = aws_s3_bucket.results.bucket },
        { name = "RUN_ID", value = "unnamed-run" },
        { name = "HOME", value = "/tmp" },
      ]
      mountPoints = [
        { sourceVolume = "results", containerPath = local.results_dir, readOnly = true },
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.loadgen.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = "upload"
        }
      }
    },
  ])
}
