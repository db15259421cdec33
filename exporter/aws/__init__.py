"""AWS IAM Identity Center (the identity store's users and groups): the only package that
imports boto3, as ``exporter/cloudflare`` is the only one that speaks HTTP to Cloudflare."""
