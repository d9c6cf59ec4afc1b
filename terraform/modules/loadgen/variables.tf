# Inputs of the loadgen module: the project's load generator as N Fargate tasks.

variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "vpc_id" {
  description = "VPC the generator tasks run in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (the tasks reach CloudFront through NAT)."
  type        = list(string)
}

variable "cluster_name" {
  description = "ECS cluster to run the tasks in."
  type        = string
}

variable "image" {
  description = "Load generator image (infra/docker/loadtest.Dockerfile)."
  type        = string
}

variable "uploader_image" {
  description = "Image with the AWS CLI that copies the results to S3 after the run."
  type        = string
  default     = "public.ecr.aws/aws-cli/aws-cli:2.15.0"
}

variable "target_url" {
  description = "Base URL the generators load (the CloudFront URL)."
  type        = string
}

variable "task_count" {
  description = "How many generator tasks one `aws ecs run-task` starts (ECS allows at most 10 per call)."
  type        = number
  default     = 4

  validation {
    condition     = var.task_count >= 1 && var.task_count <= 10
    error_message = "task_count must be from 1 to 10."
  }
}

variable "scenario" {
  description = "Scenario name: a file loadtest/scenarios/NAME.toml baked into the image."
  type        = string
  default     = "read-heavy"
}

variable "extra_args" {
  description = "Extra `loadtest run` arguments, e.g. [\"--rate\", \"2000\", \"--duration\", \"2m\"]."
  type        = list(string)
  default     = []
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
  default     = 2048
}

variable "memory" {
  description = "Task memory in MiB."
  type        = number
  default     = 4096
}

variable "jwt_secret_arn" {
  description = "Secrets Manager secret with the JWT signing key, so that scenarios with writes can sign tokens; null for read-only scenarios."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "KMS key for the results bucket, logs and secrets."
  type        = string
}

variable "log_retention_days" {
  description = "How long generator logs are kept."
  type        = number
  default     = 365
}

variable "results_retention_days" {
  description = "Days before result files in S3 expire."
  type        = number
  default     = 90
}
