"""Cloudflare's API: the only package that speaks HTTP to it (client, wire format, rate limit)."""
