"""Wiring: from a configuration to the services the commands and the server use."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.clock import Clock, utc_now
from exporter.cloudflare.client import CloudflareClient
from exporter.config import Config
from exporter.service import Services, assemble
from exporter.service.events import Events
from exporter.vault import SqliteStore


@dataclass(frozen=True)
class Runtime:
    config: Config
    services: Services


def cloudflare_client(config: Config) -> CloudflareClient:
    config.check_cloudflare()
    token = config.cloudflare_api_token
    assert token is not None and config.cloudflare_account_id is not None
    return CloudflareClient(
        base_url=config.cloudflare_base_url,
        account_id=config.cloudflare_account_id,
        token=token.get_secret_value(),
        timeout=config.cloudflare_timeout,
        per_page=config.cloudflare_page_size,
    )


def build_runtime(config: Config, clock: Clock = utc_now, events: Events | None = None) -> Runtime:
    """Open the Vault store (VaultError if unusable) and connect the services."""
    client = cloudflare_client(config)
    vault = SqliteStore(config.database).open(seed_interval=config.check_interval)
    return Runtime(config, assemble(vault, client, clock=clock, events=events))
