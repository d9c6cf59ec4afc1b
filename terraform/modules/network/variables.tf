# Inputs of the network module: one VPC over two availability zones.

variable "name" {
  description = "Prefix for every resource name and Name tag."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's address range; split into two public and two private /20 subnets."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 18
    error_message = "cidr_block must be a valid IPv4 CIDR of /18 or larger (four /20 subnets must fit)."
  }
}

variable "availability_zones" {
  description = "The two zones to use; null: the region's zones a and b (some accounts lack one of them, e.g. in us-west-1: then name two)."
  type        = list(string)
  default     = null

  validation {
    condition     = var.availability_zones == null || length(coalesce(var.availability_zones, [])) == 2
    error_message = "availability_zones must name exactly two zones."
  }
}

variable "nat_gateway_per_zone" {
  description = "One NAT gateway per zone (survives a zone outage) instead of one shared NAT gateway (cheaper)."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the VPC flow log group."
  type        = string
}

variable "log_retention_days" {
  description = "How long the VPC flow logs are kept."
  type        = number
  default     = 365
}
