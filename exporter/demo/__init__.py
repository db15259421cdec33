"""The embedded default: a sample Vault, the simulated Cloudflare, and `vault-drift demo`."""
