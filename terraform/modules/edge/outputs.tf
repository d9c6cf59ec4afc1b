# Outputs of the edge module.

output "domain_name" {
  description = "The distribution's *.cloudfront.net name."
  value       = aws_cloudfront_distribution.this.domain_name
}

output "url" {
  description = "Base URL of the edge (first alias if any)."
  value       = "https://${length(var.aliases) > 0 ? var.aliases[0] : aws_cloudfront_distribution.this.domain_name}"
}

output "distribution_id" {
  description = "Distribution id (for invalidations)."
  value       = aws_cloudfront_distribution.this.id
}
