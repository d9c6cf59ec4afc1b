# Inputs of the databases module: RDS PostgreSQL and Amazon Keyspaces.

variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "vpc_id" {
  description = "VPC the database lives in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (two zones) for the database."
  type        = list(string)
}

variable "client_security_group_id" {
  description = "Security group of the only clients (the origin tasks)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for storage, Performance Insights, logs, the managed password and Keyspaces tables."
  type        = string
}

variable "postgres_major_version" {
  description = "PostgreSQL major version; RDS picks its default minor release."
  type        = string
  default     = "16"
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.m7g.large"
}

variable "allocated_storage_gb" {
  description = "Initial gp3 storage; grows on its own up to four times this."
  type        = number
  default     = 50
}

variable "multi_az" {
  description = "A synchronous standby in the second zone."
  type        = bool
  default     = true
}

variable "database_name" {
  description = "Database the origin uses."
  type        = string
  default     = "songs"
}

variable "master_username" {
  description = "Master user name; its password is generated and kept by RDS in Secrets Manager."
  type        = string
  default     = "songs_admin"
}

variable "backup_retention_days" {
  description = "Days of automated backups."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Protect the instance from deletion; set false for short-lived load-test environments."
  type        = bool
  default     = true
}

variable "require_tls" {
  description = "Set rds.force_ssl=1 so that only TLS connections are accepted. Keep false until the origin's PostgreSQL client speaks TLS (see docs/deploy.md)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "How long exported PostgreSQL logs are kept."
  type        = number
  default     = 365
}

variable "keyspaces_enabled" {
  description = "Create the Amazon Keyspaces keyspace and tables for the Cassandra backend."
  type        = bool
  default     = true
}

variable "keyspace_name" {
  description = "Keyspace name; must match the keyspace in origin/cql/schema.cql."
  type        = string
  default     = "song_comments"
}
