# Outputs of the databases module (never a password: only where to find it).

output "postgres_address" {
  description = "Host name of the PostgreSQL instance."
  value       = aws_db_instance.postgres.address
}

output "postgres_port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.postgres.port
}

output "postgres_database" {
  description = "Database name."
  value       = aws_db_instance.postgres.db_name
}

output "postgres_master_secret_arn" {
  description = "Secrets Manager secret (JSON with username and password) that RDS manages."
  value       = aws_db_instance.postgres.master_user_secret[0].secret_arn
}

output "keyspace_name" {
  description = "Amazon Keyspaces keyspace, or null when disabled."
  value       = var.keyspaces_enabled ? aws_keyspaces_keyspace.this[0].name : null
}

output "keyspace_arn" {
  description = "Amazon Keyspaces keyspace ARN, or null when disabled."
  value       = var.keyspaces_enabled ? aws_keyspaces_keyspace.this[0].arn : null
}

output "keyspaces_endpoint" {
  description = "The regional Amazon Keyspaces CQL endpoint (TLS on port 9142)."
  value       = "cassandra.${data.aws_region.current.name}.amazonaws.com:9142"
}

output "security_group_id" {
  description = "The database's security group."
  value       = aws_security_group.postgres.id
}
