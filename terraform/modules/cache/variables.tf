# Inputs of the cache module: ElastiCache Redis for the origin's response cache.

variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "vpc_id" {
  description = "VPC the cache lives in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the cache nodes."
  type        = list(string)
}

variable "client_security_group_id" {
  description = "Security group of the only clients (the origin tasks)."
  type        = string
}

variable "node_type" {
  description = "Cache node type."
  type        = string
  default     = "cache.t4g.medium"
}

variable "replicas" {
  description = "Read replicas besides the primary, in the other zone; at least one, for automatic failover."
  type        = number
  default     = 1

  validation {
    condition     = var.replicas >= 1 && var.replicas <= 5
    error_message = "replicas must be from 1 to 5 (automatic failover needs a replica)."
  }
}

variable "engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "transit_encryption_mode" {
  description = "\"required\": TLS only. \"preferred\": TLS and plaintext both accepted (only while migrating clients to TLS)."
  type        = string
  default     = "required"

  validation {
    condition     = contains(["required", "preferred"], var.transit_encryption_mode)
    error_message = "transit_encryption_mode must be required or preferred."
  }
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest and for the auth-token secret."
  type        = string
}

variable "snapshot_retention_days" {
  description = "Days of automatic snapshots (the cache can be rebuilt, so few are needed)."
  type        = number
  default     = 1
}
