# Outputs of the origin module.

output "cluster_arn" {
  description = "The ECS cluster (the load generator can run its tasks here too)."
  value       = aws_ecs_cluster.this.arn
}

output "cluster_name" {
  description = "The ECS cluster's name."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "The origin service's name."
  value       = aws_ecs_service.origin.name
}

output "task_definition_family" {
  description = "Task definition family, for one-off tasks such as `origin seed`."
  value       = aws_ecs_task_definition.origin.family
}

output "security_group_id" {
  description = "The tasks' security group: the only source the cache and database accept."
  value       = aws_security_group.tasks.id
}

output "log_group_name" {
  description = "CloudWatch log group of the origin containers."
  value       = aws_cloudwatch_log_group.origin.name
}
