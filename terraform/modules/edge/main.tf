# The edge module: a CloudFront distribution that does what the edge function
# does locally. `/api/*` GET and HEAD responses are cached under a key made of
# the path and every query string (no cookies, no headers; compression is
# normalised by CloudFront); writes pass straight through; an origin group
# fails reads over to a second origin on 500/502/503/504. One thing it does
# that the local edge does not: it compresses answers (`compress = true`;
# edge/README.md says why the edge does not).

locals {
  primary_origin_id   = "alb-primary"
  secondary_origin_id = "alb-secondary"
  origin_group_id     = "origin-failover"
  custom_certificate  = var.acm_certificate_arn != null
  origins = {
    (local.primary_origin_id)   = var.primary_origin_domain_name
    (local.secondary_origin_id) = coalesce(var.secondary_origin_domain_name, var.primary_origin_domain_name)
  }
}

resource "aws_cloudfront_cache_policy" "api" {
  name        = "${var.name}-api"
  comment     = "Keyed like the edge function: path plus all query strings"
  min_ttl     = 0
  default_ttl = var.default_ttl_seconds
  max_ttl     = var.max_ttl_seconds

  parameters_in_cache_key_and_forwarded_to_origin {
    # CloudFront adds Accept-Encoding to the key itself when these are on,
    # which is all that the origin's `Vary: Accept-Encoding` asks for.
    enable_accept_encoding_gzip   = true
    enable_accept_encoding_brotli = true

    query_strings_config {
      query_string_behavior = "all"
    }
    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
  }
}

# What reaches the origin besides the key: the body's type for writes and the
# CORS request headers. Authorization is forwarded by CloudFront on POST, PUT,
# PATCH and DELETE without being listed (and may not be listed here); GET and
# HEAD are public reads, so stripping it there is what caching needs.
resource "aws_cloudfront_origin_request_policy" "api" {
  name    = "${var.name}-api"
  comment = "Query strings and the headers a write needs; no cookies"

  query_strings_config {
    query_string_behavior = "all"
  }
  cookies_config {
    cookie_behavior = "none"
  }
  headers_config {
    header_behavior = "whitelist"
    headers {
      items = [
        "Content-Type",
        "Accept",
        "Origin",
        "Access-Control-Request-Method",
        "Access-Control-Request-Headers",
      ]
    }
  }
}

resource "aws_cloudfront_response_headers_policy" "security" {
  name    = "${var.name}-security-headers"
  comment = "Security headers on every response"

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    content_type_options {
      override = true
    }
    frame_options {
      frame_option = "DENY"
      override     = true
    }
    referrer_policy {
      referrer_policy = "strict-origin-when-cross-origin"
      override        = true
    }
    xss_protection {
      protection = true
      mode_block = true
      override   = true
    }
    content_security_policy {
      content_security_policy = "default-src 'none'; frame-ancestors 'none'"
      override                = true
    }
  }
}

data "aws_cloudfront_cache_policy" "caching_disabled" {
  name = "Managed-CachingDisabled"
}

resource "aws_cloudfront_distribution" "this" {
  #checkov:skip=CKV_AWS_68: a WAF web ACL is optional (var.web_acl_arn): its rate-based rules would throttle the load tests this distribution exists for, and it adds a per-request charge.
  #checkov:skip=CKV2_AWS_47: same: no WAF by default, so no AMR Log4j rule either.
  #checkov:skip=CKV_AWS_86: standard access logs are optional (var.logging_bucket_domain_name); at load-test rates they cost more than the test.
  #checkov:skip=CKV_AWS_374: geo restriction does not fit a public API whose load generators may run in any region.
  #checkov:skip=CKV_AWS_305: an API distribution has no root object; `/` is not served.
  #checkov:skip=CKV_AWS_174: with the default *.cloudfront.net certificate CloudFront fixes the minimum protocol itself; with acm_certificate_arn set, TLSv1.2_2021 is used.
  #checkov:skip=CKV2_AWS_42: a custom certificate needs a domain (var.aliases and var.acm_certificate_arn); the default certificate serves the *.cloudfront.net URL over HTTPS.
  enabled         = true
  is_ipv6_enabled = true
  http_version    = "http2and3"
  price_class     = var.price_class
  comment         = "${var.name}: song-comments edge"
  aliases         = var.aliases
  web_acl_id      = var.web_acl_arn

  dynamic "origin" {
    for_each = local.origins
    content {
      origin_id           = origin.key
      domain_name         = origin.value
      connection_attempts = 2
      connection_timeout  = 5

      custom_origin_config {
        http_port                = 80
        https_port               = 443
        origin_protocol_policy   = var.origin_protocol_policy
        origin_ssl_protocols     = ["TLSv1.2"]
        origin_keepalive_timeout = 60
        origin_read_timeout      = 30
      }

      custom_header {
        name  = var.origin_verify_header_name
        value = var.origin_verify_header_value
      }
    }
  }

  origin_group {
    origin_id = local.origin_group_id

    failover_criteria {
      status_codes = [500, 502, 503, 504]
    }

    member {
      origin_id = local.primary_origin_id
    }

    member {
      origin_id = local.secondary_origin_id
    }
  }

  # The API. Reads are cached; writes go straight to the primary origin
  # (CloudFront refuses origin groups on behaviours that allow writes).
  ordered_cache_behavior {
    path_pattern               = "/api/*"
    target_origin_id           = var.api_reads_via_origin_group ? local.origin_group_id : local.primary_origin_id
    allowed_methods            = var.api_reads_via_origin_group ? ["GET", "HEAD", "OPTIONS"] : ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
    cached_methods             = ["GET", "HEAD"]
    viewer_protocol_policy     = "https-only"
    compress                   = true
    cache_policy_id            = aws_cloudfront_cache_policy.api.id
    origin_request_policy_id   = aws_cloudfront_origin_request_policy.api.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id
  }

  # Everything else (the health checks; the ALB refuses other paths, /metrics
  # included) goes through the failover group, uncached.
  default_cache_behavior {
    target_origin_id           = local.origin_group_id
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    viewer_protocol_policy     = "redirect-to-https"
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.caching_disabled.id
    origin_request_policy_id   = aws_cloudfront_origin_request_policy.api.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id
  }

  dynamic "logging_config" {
    for_each = var.logging_bucket_domain_name == null ? [] : [var.logging_bucket_domain_name]
    content {
      bucket          = logging_config.value
      include_cookies = false
      prefix          = "${var.name}/"
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = !local.custom_certificate
    acm_certificate_arn            = var.acm_certificate_arn
    ssl_support_method             = local.custom_certificate ? "sni-only" : null
    minimum_protocol_version       = local.custom_certificate ? "TLSv1.2_2021" : "TLSv1"
  }
}
