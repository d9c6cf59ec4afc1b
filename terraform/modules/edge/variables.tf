# Inputs of the edge module: the CloudFront distribution in the edge function's role.

variable "name" {
  description = "Prefix for every resource name."
  type        = string
}

variable "primary_origin_domain_name" {
  description = "DNS name of the primary origin (the ALB)."
  type        = string
}

variable "secondary_origin_domain_name" {
  description = "DNS name of the failover origin (e.g. the ALB of a standby region). Null: the primary ALB again, so a failed read is retried once on another healthy task."
  type        = string
  default     = null
}

variable "origin_protocol_policy" {
  description = "http-only or https-only, as the load balancer module says."
  type        = string

  validation {
    condition     = contains(["http-only", "https-only"], var.origin_protocol_policy)
    error_message = "origin_protocol_policy must be http-only or https-only."
  }
}

variable "origin_verify_header_name" {
  description = "Secret header every origin request carries."
  type        = string
}

variable "origin_verify_header_value" {
  description = "Value of the secret header."
  type        = string
  sensitive   = true
}

variable "api_reads_via_origin_group" {
  description = "Send /api/* through the failover origin group. CloudFront allows origin groups only on GET/HEAD/OPTIONS behaviours, so writes are then refused: use for read-only load tests."
  type        = bool
  default     = false
}

variable "default_ttl_seconds" {
  description = "TTL when the origin sends no Cache-Control (0: not cached, like the edge function)."
  type        = number
  default     = 0
}

variable "max_ttl_seconds" {
  description = "Upper bound on any TTL the origin asks for."
  type        = number
  default     = 86400
}

variable "price_class" {
  description = "CloudFront price class (which edge locations serve viewers)."
  type        = string
  default     = "PriceClass_100"
}

variable "aliases" {
  description = "Custom domain names; need acm_certificate_arn (in us-east-1)."
  type        = list(string)
  default     = []
}

variable "acm_certificate_arn" {
  description = "ACM certificate in us-east-1 for the aliases. Null: the *.cloudfront.net certificate."
  type        = string
  default     = null
}

variable "web_acl_arn" {
  description = "WAFv2 web ACL (CLOUDFRONT scope) to attach; null for none."
  type        = string
  default     = null
}

variable "logging_bucket_domain_name" {
  description = "S3 bucket domain name (ACLs enabled) for standard access logs; null for none."
  type        = string
  default     = null
}
