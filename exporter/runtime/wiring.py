"""Wiring: from a configuration to the services the commands and the server use."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from exporter.clock import Clock, utc_now
from exporter.cloudflare.client import CloudflareClient
from exporter.cloudflare.d1 import D1Client
from exporter.cloudflare.ratelimit import ClientStats, RateLimitGate
from exporter.config import Config
from exporter.core.provider import AWS_IDENTITY_CENTER, Provider
from exporter.core.webhooks import Announcer, destination_key
from exporter.metrics import ExporterMetrics, WebhookMetrics
from exporter.service import Services, assemble
from exporter.service.cycle import CycleDone
from exporter.service.events import Events
from exporter.service.sessions import SessionRevoker
from exporter.vault import SqliteStore, VaultStore
from exporter.vault.d1 import D1Store
from exporter.webhooks.delivery import Dispatcher, Receiver
from exporter.webhooks.transport import HttpTransport
from exporter.webhooks.worker import DeliveryWorker

log = logging.getLogger("vault_drift.webhooks")


@dataclass(frozen=True)
class Runtime:
    config: Config
    services: Services
    # The cycle's followers that the metrics read (README, "Effective removal").
    sessions: SessionRevoker | None = field(default=None, compare=False)


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


def d1_client(
    config: Config, gate: RateLimitGate | None = None, stats: ClientStats | None = None
) -> D1Client:
    """The D1 client of ``VAULT_DRIFT_DATABASE=d1://<id>``; give it the Access client's gate
    and stats so that both APIs share one budget (a 429 from either pauses both)."""
    config.check_d1()
    token, database_id = config.d1_token, config.d1_database_id
    assert token is not None and database_id is not None
    assert config.cloudflare_account_id is not None
    stats = stats if stats is not None else ClientStats()
    return D1Client(
        base_url=config.cloudflare_base_url,
        account_id=config.cloudflare_account_id,
        database_id=database_id,
        token=token.get_secret_value(),
        gate=gate if gate is not None else RateLimitGate(stats),
        stats=stats,
        timeout=config.cloudflare_timeout,
    )


def open_vault(
    config: Config, cloudflare: CloudflareClient | None = None, *, seed: bool = True
) -> VaultStore:
    """The Vault store the configuration names, opened (VaultError if unusable); ``seed``
    fills the interval of a database that has none (``serve``, ``check``, ``sync``)."""
    interval = config.check_interval if seed else None
    if config.d1_database_id is not None:
        client = (
            d1_client(config, cloudflare.rate_gate, cloudflare.stats)
            if cloudflare is not None
            else d1_client(config)
        )
        return D1Store(client).open(seed_interval=interval)
    return SqliteStore(config.database).open(seed_interval=interval)


def announcer(config: Config) -> Announcer | None:
    """Where webhook events go (README "Webhooks"); None when no receiver is configured."""
    config.check_webhooks()
    if not config.webhook_urls:
        return None
    return Announcer(
        tuple(destination_key(url) for url in config.webhook_urls),
        config.effective_public_url(),
        new_id=lambda: f"msg_{uuid.uuid4().hex}",
    )


def aws_provider(config: Config) -> tuple[Provider | None, str | None]:
    """AWS IAM Identity Center when ``VAULT_DRIFT_AWS_IDENTITY_STORE_ID`` is set, else why not
    (None: the default reason, which names the variable). boto3 is imported only here, and
    only then: without the ``aws`` extra, Cloudflare audiences work as before."""
    store_id = config.aws_identity_store_id
    if store_id is None:
        return None, None
    try:
        from exporter.aws.identity_store import AwsError, IdentityStoreClient
        from exporter.aws.provider import IdentityCenter
    except ImportError:
        return None, (
            "AWS IAM Identity Center needs boto3: pip install 'vault-drift[aws]'"
            f" (VAULT_DRIFT_AWS_IDENTITY_STORE_ID is {store_id})"
        )
    try:
        client = IdentityStoreClient(
            identity_store_id=store_id,
            endpoint_url=config.aws_endpoint_url,
        )
    except AwsError as exc:
        return None, f"AWS IAM Identity Center: {exc.message}"
    return IdentityCenter(client), None


def d1_store(config: Config, cloudflare: CloudflareClient) -> D1Store:
    """The D1 Vault of the configuration, not opened yet (``serve`` takes its lease first)."""
    return D1Store(d1_client(config, cloudflare.rate_gate, cloudflare.stats))


def build_runtime(
    config: Config,
    clock: Clock = utc_now,
    events: Events | None = None,
    *,
    cloudflare: CloudflareClient | None = None,
    vault: VaultStore | None = None,
) -> Runtime:
    """Open the Vault store (VaultError if unusable) and connect the services; ``vault``, an
    opened store, and ``cloudflare``, its client, when the caller made them already."""
    webhooks = announcer(config)
    client = cloudflare or cloudflare_client(config)
    vault = vault or open_vault(config, client)
    aws, why_not = aws_provider(config)
    services = assemble(
        vault,
        client,
        clock=clock,
        events=events,
        attribution=True,
        vault_api_actors=config.vault_api_actors,
        announcer=webhooks,
        providers=[aws] if aws is not None else [],
        unavailable={AWS_IDENTITY_CENTER: why_not} if why_not else None,
    )
    sessions = SessionRevoker(vault, client, clock=clock, announcements=services.announcements)
    services.cycle.followers.append(sessions)
    return Runtime(config, services, sessions)


class WakeDelivery:
    """A cycle follower: after each check or sync, the delivery worker looks at the outbox
    (the rows were written with the state change; this only saves the worker's idle wait)."""

    def __init__(self, worker: DeliveryWorker) -> None:
        self.worker = worker

    def after_cycle(self, done: CycleDone) -> None:
        self.worker.wake()


def webhook_delivery(runtime: Runtime, counters: ExporterMetrics) -> DeliveryWorker | None:
    """``serve``'s delivery of the outbox, in its own thread (a check never waits for it),
    woken by the cycle; None when no receiver is configured (README "Webhooks")."""
    config, services = runtime.config, runtime.services
    key = config.webhook_key
    if not config.webhook_urls or key is None:
        return None
    dispatcher = Dispatcher(
        services.vault,
        [Receiver(url) for url in config.webhook_urls],
        key,
        HttpTransport(),
        clock=services.checker.clock,
        events=WebhookMetrics(counters.registry),
    )
    worker = DeliveryWorker(dispatcher)
    services.cycle.followers.append(WakeDelivery(worker))
    log.info("webhooks on", extra={"receivers": [r.label for r in dispatcher.receivers.values()]})
    return worker
