"""vault-drift: drift between TPB Vault memberships and Cloudflare Access groups, as metrics."""

__version__ = "0.1.0"
