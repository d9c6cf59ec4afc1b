# Inputs of the load balancer module: a public ALB that only CloudFront can use.

variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "vpc_id" {
  description = "VPC the load balancer and its target group live in."
  type        = string
}

variable "public_subnet_ids" {
  description = "Two public subnets in different zones."
  type        = list(string)
}

variable "target_port" {
  description = "Port the origin containers listen on."
  type        = number
  default     = 8080
}

variable "certificate_arn" {
  description = "ACM certificate for an HTTPS listener (needs a domain name pointing at the ALB). Null: plain HTTP between CloudFront and the ALB."
  type        = string
  default     = null
}

variable "origin_verify_header_name" {
  description = "Header CloudFront adds to every origin request; the listener forwards only requests that carry it with the right value."
  type        = string
  default     = "X-Origin-Verify"
}

variable "access_logs_bucket" {
  description = "S3 bucket for ALB access logs (must allow the regional ELB account to write). Null: no access logs."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protect the ALB from deletion; set false for short-lived load-test environments."
  type        = bool
  default     = true
}

variable "idle_timeout" {
  description = "Seconds an idle client connection (from CloudFront) is kept open; longer than CloudFront's 60 s origin keep-alive, so that CloudFront, not the ALB, closes idle connections and never sends on one being closed."
  type        = number
  default     = 75
}
