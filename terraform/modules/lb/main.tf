# The load balancer module: an internet-facing ALB whose only clients are
# CloudFront's origin-facing servers, checked twice: by source address (the
# managed prefix list) and by a secret header that only our distribution sends.

data "aws_ec2_managed_prefix_list" "cloudfront" {
  name = "com.amazonaws.global.cloudfront.origin-facing"
}

locals {
  https         = var.certificate_arn != null
  listener_port = local.https ? 443 : 80
}

# The secret shared by CloudFront (custom origin header) and the listener rule.
# It is in the state by nature (both resources must know it); it is not a
# credential for any data, only proof that a request came through our
# distribution.
resource "random_password" "origin_verify" {
  length  = 40
  special = false
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "ALB: HTTP(S) from CloudFront origin-facing addresses only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-alb" }
}

resource "aws_vpc_security_group_ingress_rule" "from_cloudfront" {
  security_group_id = aws_security_group.alb.id
  description       = "CloudFront origin-facing servers"
  prefix_list_id    = data.aws_ec2_managed_prefix_list.cloudfront.id
  ip_protocol       = "tcp"
  from_port         = local.listener_port
  to_port           = local.listener_port
}

# The egress rule to the tasks is created by the origin module, which knows the
# tasks' security group.

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_20: the HTTP listener exists only when no certificate is given (see aws_lb_listener.http); viewers reach CloudFront over HTTPS only, and there is nothing to redirect between CloudFront and the ALB.
  #checkov:skip=CKV2_AWS_28: WAF belongs in front of CloudFront, not here: the ALB accepts only CloudFront (prefix list + secret header), and a rate-based WAF rule would throttle the load tests this stack exists for.
  name                       = "${var.name}-alb"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  desync_mitigation_mode     = "strictest"
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = var.idle_timeout
  enable_http2               = true

  access_logs {
    bucket  = var.access_logs_bucket == null ? "" : var.access_logs_bucket
    prefix  = var.name
    enabled = var.access_logs_bucket != null
  }
}

resource "aws_lb_target_group" "origin" {
  #checkov:skip=CKV_AWS_378: TLS ends at CloudFront (and at the ALB when a certificate is given); the hop to the tasks stays inside private subnets, open only to the ALB's security group, and the origin serves plain HTTP.
  name        = "${var.name}-origin"
  vpc_id      = var.vpc_id
  target_type = "ip"
  protocol    = "HTTP"
  port        = var.target_port
  # Fargate tasks stop quickly; a long drain only slows scale-in and deploys.
  deregistration_delay          = 15
  load_balancing_algorithm_type = "least_outstanding_requests"

  health_check {
    enabled             = true
    path                = "/readyz"
    matcher             = "200"
    protocol            = "HTTP"
    port                = "traffic-port"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      message_body = "{\"error\":\"direct access to the origin load balancer is not allowed\"}"
      status_code  = "403"
    }
  }
}

resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2: used only when no certificate is given: an ALB's own DNS name cannot carry a public certificate, so CloudFront talks to it over HTTP inside AWS's network; set certificate_arn to get the HTTPS listener instead.
  #checkov:skip=CKV_AWS_103: same listener: no TLS without a certificate; the HTTPS listener above uses a TLS 1.2+ policy.
  #checkov:skip=CKV2_AWS_20: same listener: a redirect to HTTPS needs a certificate; viewers reach CloudFront over HTTPS only.
  count = local.https ? 0 : 1

  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      message_body = "{\"error\":\"direct access to the origin load balancer is not allowed\"}"
      status_code  = "403"
    }
  }
}

resource "aws_lb_listener_rule" "from_cloudfront" {
  listener_arn = local.https ? aws_lb_listener.https[0].arn : aws_lb_listener.http[0].arn
  priority     = 10

  # Only the public API and the health checks; /metrics stays private.
  condition {
    path_pattern {
      values = ["/api/*", "/healthz", "/readyz"]
    }
  }

  condition {
    http_header {
      http_header_name = var.origin_verify_header_name
      values           = [random_password.origin_verify.result]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.origin.arn
  }
}
