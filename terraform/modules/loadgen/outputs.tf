# Outputs of the loadgen module: where results go and the commands to run and merge.

output "results_bucket" {
  description = "S3 bucket the tasks write their results to, one file per task under RUN_ID/."
  value       = aws_s3_bucket.results.bucket
}

output "task_definition_family" {
  description = "Task definition family of the generator."
  value       = aws_ecs_task_definition.loadgen.family
}

output "run_command" {
  description = "Starts task_count generators; set RUN_ID first (e.g. RUN_ID=$(date -u +%Y%m%dT%H%M%SZ))."
  value = join(" ", [
    "aws ecs run-task",
    "--region ${data.aws_region.current.name}",
    "--cluster ${var.cluster_name}",
    "--task-definition ${aws_ecs_task_definition.loadgen.family}",
    "--count ${var.task_count}",
    "--launch-type FARGATE",
    "--network-configuration 'awsvpcConfiguration={subnets=[${join(",", var.subnet_ids)}],securityGroups=[${aws_security_group.loadgen.id}],assignPublicIp=DISABLED}'",
    "--overrides \"{\\\"containerOverrides\\\":[{\\\"name\\\":\\\"upload\\\",\\\"environment\\\":[{\\\"name\\\":\\\"RUN_ID\\\",\\\"value\\\":\\\"$RUN_ID\\\"}]}]}\"",
  ])
}

output "merge_command" {
  description = "After the tasks stopped: fetch every task's file and merge them with `loadtest merge`."
  value       = "aws s3 cp --recursive \"s3://${aws_s3_bucket.results.bucket}/$RUN_ID/\" \"results/$RUN_ID/\" && loadtest merge results/$RUN_ID/*.json --out \"results/$RUN_ID/merged.json\""
}
