# The cache module: an ElastiCache Redis replication group, encrypted at rest
# and in transit, with an AUTH token kept in Secrets Manager for the origin.

resource "aws_security_group" "redis" {
  name        = "${var.name}-redis"
  description = "Redis: port 6379 from the origin tasks only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-redis" }
}

resource "aws_vpc_security_group_ingress_rule" "from_clients" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis from origin tasks"
  referenced_security_group_id = var.client_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_vpc_security_group_egress_rule" "clients_to_redis" {
  security_group_id            = var.client_security_group_id
  description                  = "Origin tasks to Redis"
  referenced_security_group_id = aws_security_group.redis.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_elasticache_subnet_group" "this" {
  name       = "${var.name}-redis"
  subnet_ids = var.subnet_ids
}

resource "aws_elasticache_parameter_group" "this" {
  name   = "${var.name}-redis7"
  family = "redis7"

  # A cache, not a store: when full, evict the least recently used key among
  # those with an expiry. The origin's generation keys (o:gen:*) have none and
  # must never be evicted, or pages a write made stale would come back
  # (origin/src/cache.rs); every other key the origin writes has a TTL.
  parameter {
    name  = "maxmemory-policy"
    value = "volatile-lru"
  }
}

# ElastiCache takes the AUTH token only as a plain argument (there is no
# write-only variant), so this one value is in the Terraform state, marked
# sensitive: keep the state in an encrypted, access-controlled backend. It is
# not an output; the origin reads it from Secrets Manager.
resource "random_password" "auth_token" {
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret" "auth_token" {
  #checkov:skip=CKV2_AWS_57: rotating the token means rotating ElastiCache's AUTH (SET then ROTATE) in step with the tasks; rotate by tainting random_password.auth_token and applying, which redeploys both.
  name                    = "${var.name}/redis-auth-token"
  description             = "AUTH token of the ${var.name} Redis replication group"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "auth_token" {
  secret_id     = aws_secretsmanager_secret.auth_token.id
  secret_string = random_password.auth_token.result
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id = "${var.name}-redis"
  description          = "Response cache of the song-comments origin"
  engine               = "redis"
  engine_version       = var.engine_version
  node_type            = var.node_type
  num_cache_clusters   = 1 + var.replicas
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.this.name
  subnet_group_name    = aws_elasticache_subnet_group.this.name
  security_group_ids   = [aws_security_group.redis.id]

  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  transit_encryption_mode    = var.transit_encryption_mode
  auth_token                 = random_password.auth_token.result
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit   = var.snapshot_retention_days
  auto_minor_version_upgrade = true
  apply_immediately          = true
}
