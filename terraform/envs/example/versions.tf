# Terraform and provider versions for the example environment. Terraform 1.11+
# is needed for write-only arguments (the JWT secret never enters the state).

terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.90"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # Keep the state remote and encrypted: it holds the Redis AUTH token and the
  # CloudFront-to-ALB header secret (marked sensitive). For example:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "song-comments/example.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "song-comments"
      Environment = var.name
      ManagedBy   = "terraform"
    }
  }
}
