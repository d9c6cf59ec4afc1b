# Outputs of the example environment: where the system is and the exact
# commands to load it. No output holds a secret; commands that need the JWT
# key fetch it from Secrets Manager when they run.

locals {
  fetch_jwt_secret = "export JWT_SECRET=$(aws secretsmanager get-secret-value --region ${var.region} --secret-id ${aws_secretsmanager_secret.jwt.arn} --query SecretString --output text) &&"
  # k6 and Artillery send writes with a token that `loadtest token` mints (HS256, sub = user 1).
  mint_token     = "export TOKEN=$(cargo run -q --release -p loadtest -- token --user 1) &&"
  network_config = "awsvpcConfiguration={subnets=[${join(",", module.network.private_subnet_ids)}],securityGroups=[${module.origin.security_group_id}],assignPublicIp=DISABLED}"
}

output "edge_url" {
  description = "The CloudFront URL: the system's front door."
  value       = module.edge.url
}

output "cloudfront_distribution_id" {
  description = "For invalidations: aws cloudfront create-invalidation --distribution-id ID --paths '/api/*'."
  value       = module.edge.distribution_id
}

output "alb_dns_name" {
  description = "The ALB (answers 403 to anything that did not come through CloudFront)."
  value       = module.lb.dns_name
}

output "ecs_cluster" {
  description = "ECS cluster running the origin."
  value       = module.origin.cluster_name
}

output "origin_logs" {
  description = "Follow the origin's logs."
  value       = "aws logs tail --region ${var.region} --follow ${module.origin.log_group_name}"
}

output "seed_command" {
  description = "Seeds the database once, as a one-off task of the origin image (size: var.seed_scale)."
  value = join(" ", [
    "aws ecs run-task --region ${var.region}",
    "--cluster ${module.origin.cluster_name}",
    "--task-definition ${module.origin.task_definition_family}",
    "--launch-type FARGATE",
    "--network-configuration '${local.network_config}'",
    "--overrides '{\"containerOverrides\":[{\"name\":\"origin\",\"command\":[\"seed\",\"--scale\",\"${var.seed_scale}\"]}]}'",
  ])
}

output "k6_command" {
  description = "Runs the k6 script against the CloudFront URL (from the repository root)."
  value       = "${local.fetch_jwt_secret} ${local.mint_token} k6 run -e TARGET=${module.edge.url} -e TOKEN=\"$TOKEN\" ${var.k6_script}"
}

output "artillery_command" {
  description = "Runs the Artillery script against the CloudFront URL (from the repository root)."
  value       = "${local.fetch_jwt_secret} ${local.mint_token} TARGET=${module.edge.url} ARTILLERY_DISABLE_TELEMETRY=true npx artillery run ${var.artillery_script}"
}

output "loadtest_command" {
  description = "Runs the project's own generator from this machine against the CloudFront URL."
  value       = "${local.fetch_jwt_secret} cargo run --release -p loadtest -- run loadtest/scenarios/${var.loadgen_scenario}.toml --target ${module.edge.url} --out results-cloudfront.json"
}

output "loadgen_run_command" {
  description = "Starts the generator tasks in ECS (set RUN_ID first); null without loadtest_image."
  value       = var.loadtest_image == null ? null : module.loadgen[0].run_command
}

output "loadgen_merge_command" {
  description = "Fetches the tasks' results from S3 and merges them; null without loadtest_image."
  value       = var.loadtest_image == null ? null : module.loadgen[0].merge_command
}
