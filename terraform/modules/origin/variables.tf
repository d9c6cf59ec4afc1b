# Inputs of the origin module: the song-comments API as an ECS Fargate service.

variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "vpc_id" {
  description = "VPC the tasks run in."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for the tasks (no public addresses)."
  type        = list(string)
}

variable "image" {
  description = "Origin container image (built from infra/docker/origin.Dockerfile and pushed to ECR)."
  type        = string
}

variable "container_port" {
  description = "Port the origin listens on inside the task (ORIGIN_LISTEN)."
  type        = number
  default     = 8080
}

variable "cpu" {
  description = "Task CPU units (1024 = one vCPU)."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Task memory in MiB."
  type        = number
  default     = 2048
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64; must match the image."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "desired_count" {
  description = "Number of origin instances, 1 to 10 (the study's range). With autoscaling off this is the fixed count."
  type        = number
  default     = 2

  validation {
    condition     = var.desired_count >= 1 && var.desired_count <= 10 && floor(var.desired_count) == var.desired_count
    error_message = "desired_count must be a whole number from 1 to 10."
  }
}

variable "autoscaling_enabled" {
  description = "Scale between autoscaling_min and autoscaling_max by CPU and request count. Off: exactly desired_count tasks, for scaling studies."
  type        = bool
  default     = true
}

variable "autoscaling_min" {
  description = "Fewest tasks when autoscaling."
  type        = number
  default     = 1

  validation {
    condition     = var.autoscaling_min >= 1 && var.autoscaling_min <= 10
    error_message = "autoscaling_min must be from 1 to 10."
  }
}

variable "autoscaling_max" {
  description = "Most tasks when autoscaling."
  type        = number
  default     = 10

  validation {
    condition     = var.autoscaling_max >= 1 && var.autoscaling_max <= 10
    error_message = "autoscaling_max must be from 1 to 10."
  }
}

variable "cpu_target_percent" {
  description = "Average CPU the CPU target-tracking policy aims for."
  type        = number
  default     = 60
}

variable "requests_per_target" {
  description = "ALB requests per task per minute the request-count policy aims for; 0 turns that policy off."
  type        = number
  default     = 0
}

variable "alb_arn_suffix" {
  description = "ALB ARN suffix, for the request-count policy."
  type        = string
}

variable "target_group_arn" {
  description = "Target group the service registers its tasks in."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "Target group ARN suffix, for the request-count policy."
  type        = string
}

variable "alb_security_group_id" {
  description = "The ALB's security group: the only source allowed to reach the tasks."
  type        = string
}

variable "environment" {
  description = "Plain environment variables for the origin container (no secrets here)."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variables filled from Secrets Manager: name => valueFrom (a secret ARN, optionally with ':json-key::')."
  type        = map(string)
  default     = {}
}

variable "secret_arns" {
  description = "Secret ARNs (without JSON-key suffixes) the task execution role may read."
  type        = list(string)
  default     = []
}

variable "keyspaces_egress" {
  description = "Allow connections out to Amazon Keyspaces (TCP 9142), for the Cassandra backend."
  type        = bool
  default     = false
}

variable "task_role_policy_json" {
  description = "Extra IAM policy for the running origin (e.g. Amazon Keyspaces access); null for none."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "KMS key for the log group and for decrypting the injected secrets."
  type        = string
}

variable "log_retention_days" {
  description = "How long origin logs are kept."
  type        = number
  default     = 365
}
