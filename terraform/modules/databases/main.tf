# The databases module: RDS PostgreSQL (the origin's default backend) in the
# private subnets, and an Amazon Keyspaces keyspace whose tables mirror the
# CQL schema of the Cassandra/ScyllaDB backend.

data "aws_region" "current" {}

# --- PostgreSQL

resource "aws_security_group" "postgres" {
  name        = "${var.name}-postgres"
  description = "PostgreSQL: port 5432 from the origin tasks only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-postgres" }
}

resource "aws_vpc_security_group_ingress_rule" "from_clients" {
  security_group_id            = aws_security_group.postgres.id
  description                  = "PostgreSQL from origin tasks"
  referenced_security_group_id = var.client_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_vpc_security_group_egress_rule" "clients_to_postgres" {
  security_group_id            = var.client_security_group_id
  description                  = "Origin tasks to PostgreSQL"
  referenced_security_group_id = aws_security_group.postgres.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_subnet_group" "this" {
  name       = "${var.name}-postgres"
  subnet_ids = var.subnet_ids
}

resource "aws_db_parameter_group" "postgres" {
  name   = "${var.name}-postgres${var.postgres_major_version}"
  family = "postgres${var.postgres_major_version}"

  parameter {
    name  = "rds.force_ssl"
    value = var.require_tls ? "1" : "0"
  }

  # Slow statements and schema changes are logged; logging every statement
  # would cost more than the queries at load-test rates.
  parameter {
    name  = "log_min_duration_statement"
    value = "250"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "postgres" {
  #checkov:skip=CKV2_AWS_69: rds.force_ssl follows var.require_tls, which stays off until the origin's tokio-postgres client is built with a TLS connector; the database is reachable only from the origin tasks' security group inside private subnets.
  identifier     = "${var.name}-postgres"
  engine         = "postgres"
  engine_version = var.postgres_major_version
  instance_class = var.instance_class
  db_name        = var.database_name
  username       = var.master_username
  port           = 5432

  # RDS generates the password and keeps it in Secrets Manager, so it is never
  # in the Terraform state, a plan or a variables file.
  manage_master_user_password   = true
  master_user_secret_kms_key_id = var.kms_key_arn

  allocated_storage     = var.allocated_storage_gb
  max_allocated_storage = var.allocated_storage_gb * 4
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.postgres.id]
  publicly_accessible    = false
  multi_az               = var.multi_az
  parameter_group_name   = aws_db_parameter_group.postgres.name

  backup_retention_period   = var.backup_retention_days
  backup_window             = "03:00-04:00"
  maintenance_window        = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name}-postgres-final"

  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  monitoring_interval                 = 30
  monitoring_role_arn                 = aws_iam_role.monitoring.arn
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = var.kms_key_arn

  depends_on = [aws_cloudwatch_log_group.postgres]
}

# Created ahead of RDS so that retention and encryption apply from the first line.
resource "aws_cloudwatch_log_group" "postgres" {
  for_each = toset(["postgresql", "upgrade"])

  name              = "/aws/rds/instance/${var.name}-postgres/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- Amazon Keyspaces: the Cassandra-compatible backend. Tables follow
# origin/cql/schema.cql: comments are stored by song in track order (the page
# query and the feed), with an index from id to that row for edits and deletes.

locals {
  # The index holds only columns that never change; the row is the truth.
  comment_index_columns = {
    id       = "uuid"
    song_id  = "bigint"
    track_ms = "int"
    user_id  = "bigint"
  }

  # The per-song row also carries the author's name and avatar, so the feed
  # reads one partition and needs no join.
  comments_by_song_columns = {
    id                = "uuid"
    song_id           = "bigint"
    user_id           = "bigint"
    body              = "text"
    track_ms          = "int"
    created_at        = "timestamp"
    updated_at        = "timestamp"
    author_name       = "text"
    author_avatar_url = "text"
  }

  keyspaces_tables = {
    songs = {
      columns = {
        id          = "bigint"
        title       = "text"
        artist      = "text"
        duration_ms = "int"
        created_at  = "timestamp"
      }
      partition_key  = ["id"]
      clustering_key = []
    }
    users = {
      columns = {
        id         = "bigint"
        name       = "text"
        avatar_url = "text"
        location   = "text"
      }
      partition_key  = ["id"]
      clustering_key = []
    }
    comments_by_song = {
      columns        = local.comments_by_song_columns
      partition_key  = ["song_id"]
      clustering_key = ["track_ms", "id"]
    }
    comments_by_id = {
      columns        = local.comment_index_columns
      partition_key  = ["id"]
      clustering_key = []
    }
  }
}

resource "aws_keyspaces_keyspace" "this" {
  count = var.keyspaces_enabled ? 1 : 0

  name = var.keyspace_name
}

resource "aws_keyspaces_table" "this" {
  for_each = var.keyspaces_enabled ? local.keyspaces_tables : {}

  keyspace_name = aws_keyspaces_keyspace.this[0].name
  table_name    = each.key

  schema_definition {
    dynamic "column" {
      for_each = each.value.columns
      content {
        name = column.key
        type = column.value
      }
    }

    dynamic "partition_key" {
      for_each = each.value.partition_key
      content {
        name = partition_key.value
      }
    }

    dynamic "clustering_key" {
      for_each = each.value.clustering_key
      content {
        name     = clustering_key.value
        order_by = "ASC"
      }
    }
  }

  capacity_specification {
    throughput_mode = "PAY_PER_REQUEST"
  }

  encryption_specification {
    type               = "CUSTOMER_MANAGED_KMS_KEY"
    kms_key_identifier = var.kms_key_arn
  }

  point_in_time_recovery {
    status = "ENABLED"
  }
}
