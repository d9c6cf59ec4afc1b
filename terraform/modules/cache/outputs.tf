# Outputs of the cache module.

output "primary_endpoint" {
  description = "Host name of the primary node (writes and reads)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "port" {
  description = "Redis port."
  value       = aws_elasticache_replication_group.this.port
}

output "auth_token_secret_arn" {
  description = "Secrets Manager secret holding the AUTH token (the value itself is never an output)."
  value       = aws_secretsmanager_secret.auth_token.arn
}

output "security_group_id" {
  description = "The cache's security group."
  value       = aws_security_group.redis.id
}
