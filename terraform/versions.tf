terraform {
  # 1.5: check blocks and import blocks; preconditions and optional object
  # attributes (used here) are older.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}
