"""Wiring: from a configuration to the collaborators the commands and the server use."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.clock import Clock, utc_now
from exporter.cloudflare.client import CloudflareClient
from exporter.config import Config
from exporter.service.checker import Engine, Events
from exporter.service.syncer import Syncer
from exporter.vault import VaultDB


@dataclass
class Runtime:
    config: Config
    db: VaultDB
    cloudflare: CloudflareClient
    engine: Engine
    syncer: Syncer


def build_runtime(config: Config, clock: Clock = utc_now, events: Events | None = None) -> Runtime:
    """Open the Vault DB (VaultError if unusable) and connect the pieces."""
    config.check_cloudflare()
    db = VaultDB(config.database).open()
    token = config.cloudflare_api_token
    assert token is not None and config.cloudflare_account_id is not None
    client = CloudflareClient(
        base_url=config.cloudflare_base_url,
        account_id=config.cloudflare_account_id,
        token=token.get_secret_value(),
        timeout=config.cloudflare_timeout,
        per_page=config.cloudflare_page_size,
    )
    engine = Engine(db, client, clock=clock, events=events, seed_interval=config.check_interval)
    return Runtime(config, db, client, engine, Syncer(engine))
