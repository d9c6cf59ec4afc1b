# Outputs of the load balancer module.

output "dns_name" {
  description = "The ALB's DNS name (CloudFront's primary origin)."
  value       = aws_lb.this.dns_name
}

output "arn_suffix" {
  description = "The ALB's ARN suffix, for request-count autoscaling."
  value       = aws_lb.this.arn_suffix
}

output "security_group_id" {
  description = "The ALB's security group."
  value       = aws_security_group.alb.id
}

# Read through the listener rule, so that whatever uses it (the ECS service)
# waits until the target group is attached to the load balancer; otherwise
# service creation fails with "target group does not have an associated load balancer".
output "target_group_arn" {
  description = "Target group the origin service registers its tasks in."
  value       = aws_lb_listener_rule.from_cloudfront.action[0].target_group_arn
}

output "target_group_arn_suffix" {
  description = "The target group's ARN suffix, for request-count autoscaling."
  value       = aws_lb_target_group.origin.arn_suffix
}

output "origin_protocol_policy" {
  description = "How CloudFront must talk to this ALB."
  value       = local.https ? "https-only" : "http-only"
}

output "origin_verify_header_name" {
  description = "Name of the secret header CloudFront must send."
  value       = var.origin_verify_header_name
}

output "origin_verify_header_value" {
  description = "Value of the secret header CloudFront must send."
  value       = random_password.origin_verify.result
  sensitive   = true
}
