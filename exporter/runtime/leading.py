"""What ``serve`` runs once the Vault is its own (the lock file or the D1 lease taken): the
Vault opened (its companion tables migrated and the interval seeded: under the lease, so two
replicas starting together never both do it), the scheduler, the watcher, the application."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence

from fastapi import FastAPI
from pydantic import SecretStr

from exporter.cloudflare.client import CloudflareClient
from exporter.config import Config
from exporter.core.snapshot import Snapshot
from exporter.metrics import ExporterMetrics, Exposition, LeaderCollector, build_exposition
from exporter.metrics.sessions import SessionCollector
from exporter.runtime.feed_poller import FeedPoller
from exporter.runtime.scheduler import CheckScheduler
from exporter.runtime.watcher import MembershipWatcher
from exporter.runtime.wiring import Runtime, build_runtime, webhook_delivery
from exporter.vault.d1 import D1Store
from exporter.web import create_app
from exporter.web.auth import Tokens
from exporter.web.deps import WebServices
from exporter.webhooks.worker import DeliveryWorker

log = logging.getLogger("vault_drift.server")

SETTLE_RETRY_SECONDS = 10
EXPIRY_SECONDS = 5


class Leader:
    """Built before the Vault is ours, started once it is, stopped at shutdown."""

    def __init__(
        self,
        config: Config,
        counters: ExporterMetrics,
        after_full_check: Sequence[Callable[[Snapshot], None]],
        cloudflare: CloudflareClient,
        d1: D1Store | None,
    ) -> None:
        self.config, self.counters, self.cloudflare, self.d1 = config, counters, cloudflare, d1
        self.after_full_check = after_full_check
        self._scheduler: CheckScheduler | None = None
        self._watcher: MembershipWatcher | None = None
        self._webhooks: DeliveryWorker | None = None
        self._poller: FeedPoller | None = None
        self._runtime: Runtime | None = None

    def start(self) -> FastAPI:
        """Open the Vault, start checking at once; the application that serves it."""
        config = self.config
        vault = self.d1.open(seed_interval=config.check_interval) if self.d1 else None
        runtime = build_runtime(
            config, events=self.counters, cloudflare=self.cloudflare, vault=vault
        )
        self._runtime = runtime
        services = runtime.services
        services.cycle.after_full_check.extend(self.after_full_check)
        exposition, _ = build_exposition(
            lambda: services.snapshots.current,
            services.cloudflare.stats.snapshot,
            counters=self.counters,
            provider_stats=services.providers.request_stats,
            feed=services.feed,
        )
        self.counters.registry.register(LeaderCollector(leader=True))
        if runtime.sessions is not None:
            revoker = runtime.sessions
            self.counters.registry.register(
                SessionCollector(
                    lambda: revoker.state,
                    lambda: services.snapshots.current.settings.revoke_sessions,
                    lambda: {
                        (c.audience.namespace, c.audience.provider)
                        for c in services.snapshots.current.checks.values()
                    },
                )
            )
        settle = _settle(runtime)
        # A follower of the cycle: before it runs.
        self._webhooks = webhook_delivery(runtime, self.counters)
        scheduler = self._scheduler = CheckScheduler(
            services.cycle,
            services.snapshots,
            # Exemptions past their end date expire within seconds, without a restart.
            periodic=[
                *_mail_jobs(runtime, self.counters),
                *settle,
                (EXPIRY_SECONDS, _expire(runtime)),
            ],
            full_interval=services.feed.full_interval_seconds if services.feed else None,
        )
        # Cloudflare-side edits within seconds: the audit log polled (docs/feed.md).
        self._poller = FeedPoller(services.feed) if services.feed is not None else None
        # The watcher polls SQLite's data_version; D1 has no change signal over REST, so there
        # vault-api's notification (POST /iam/drift/check {"audiences": [...]}) and the periodic
        # check are the whole story.
        if self.d1 is None:
            self._watcher = MembershipWatcher(services.vault, services.cycle)
        app = create_app(_web_services(runtime, exposition))
        scheduler.start()
        scheduler.run_now()
        if self._watcher is not None:
            self._watcher.start()
        if self._webhooks is not None:
            self._webhooks.start()
        if self._poller is not None:
            self._poller.start()
        return app

    def stop(self) -> None:
        """Stop checking; return once an in-flight write has finished."""
        if self._watcher is not None:
            self._watcher.stop()
        if self._webhooks is not None:
            self._webhooks.stop()
        if self._poller is not None:
            self._poller.stop()
        if self._scheduler is not None:
            self._scheduler.stop()
        if self._runtime is not None:
            with self._runtime.services.cycle.quiesced(timeout=60):
                log.info("stopped")


def _web_services(runtime: Runtime, exposition: Exposition) -> WebServices:
    config = runtime.config
    return WebServices.around(
        runtime.services,
        exposition,
        Tokens(config.admin_token, config.read_token),
        public_url=config.effective_public_url(),
        session_secret=secrets.token_urlsafe(32),
        logpush_token=_secret(config.logpush_token),
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _expire(runtime: Runtime) -> Callable[[], None]:
    def expire() -> None:
        runtime.services.exemptions.expire_due()

    return expire


def _settle(runtime: Runtime) -> list[tuple[int, Callable[[], None]]]:
    """Settle the syncs a previous process left in progress, now and, while Cloudflare cannot
    be read (down, rate limited), again every few seconds: none stays ``in_progress``."""
    services = runtime.services
    left = services.vault.audit(result="in_progress", limit=1)
    if not left:
        return []
    ceiling = int(left[0]["id"])

    def settle() -> None:
        settled = services.cycle.settle_interrupted(up_to_id=ceiling)
        if settled:
            log.warning("settled %d sync(s) interrupted by a previous stop", settled)

    try:
        settle()
    except Exception:
        log.exception("could not settle interrupted syncs yet; will retry")
    return [(SETTLE_RETRY_SECONDS, settle)]


def _mail_jobs(runtime: Runtime, counters: ExporterMetrics) -> list[tuple[int, Callable[[], None]]]:
    if not runtime.config.mail_enabled:
        log.info("mail is off: VAULT_DRIFT_SMTP_HOST, _MAIL_FROM and _MAIL_TO are not all set")
        return []
    from exporter.runtime.mailing import (
        install_mail,  # pandas and matplotlib load only when mail is on
    )

    return install_mail(runtime, counters)
