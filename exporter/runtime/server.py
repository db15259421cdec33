"""``vault-drift serve``: the long-running exporter (HTTP server, scheduler, watcher)."""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from exporter.config import Config, ConfigError
from exporter.core.snapshot import Snapshot
from exporter.metrics import ExporterMetrics, Exposition, build_exposition
from exporter.metrics.sessions import SessionCollector
from exporter.runtime.feed_poller import FeedPoller
from exporter.runtime.lease_keeper import LeaseKeeper
from exporter.runtime.logs import setup_logging
from exporter.runtime.scheduler import CheckScheduler
from exporter.runtime.watcher import MembershipWatcher
from exporter.runtime.wiring import Runtime, build_runtime, webhook_delivery
from exporter.vault import VaultError
from exporter.vault.d1 import D1Store
from exporter.web import create_app
from exporter.web.auth import Tokens
from exporter.web.deps import WebServices

log = logging.getLogger("vault_drift.server")


def check_listen(config: Config) -> None:
    """Fail early and clearly when the address is taken, before anything starts."""
    host, port = config.listen_address
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            [f"VAULT_DRIFT_LISTEN: cannot listen on {config.listen}: {exc.strerror}"]
        ) from None


def serve(config: Config, after_full_check: Sequence[Callable[[Snapshot], None]] = ()) -> int:
    check_listen(config)
    setup_logging(config.log_level, _secrets(config), config.log_format)
    counters = ExporterMetrics()
    if config.d1_database_id is None:
        with _single_instance(Path(config.database)):
            return _serve(build_runtime(config, events=counters), counters, after_full_check)
    # On D1 no lock file can exist: the writer lease of the database replaces it
    # (docs/design.md, "One writer").
    runtime = build_runtime(config, events=counters)
    vault = runtime.services.vault
    assert isinstance(vault, D1Store)
    with LeaseKeeper(vault, _holder(), config.d1_lease) as keeper:
        return _serve(runtime, counters, after_full_check, keeper)


EXPIRY_SECONDS = 5


def _expire(runtime: Runtime) -> Callable[[], None]:
    def expire() -> None:
        runtime.services.exemptions.expire_due()

    return expire


def _serve(
    runtime: Runtime,
    counters: ExporterMetrics,
    after_full_check: Sequence[Callable[[Snapshot], None]],
    lease: LeaseKeeper | None = None,
) -> int:
    config, services = runtime.config, runtime.services
    services.cycle.after_full_check.extend(after_full_check)
    exposition, _ = build_exposition(
        lambda: services.snapshots.current,
        services.cloudflare.stats.snapshot,
        counters=counters,
        provider_stats=services.providers.request_stats,
        feed=services.feed,
    )
    if runtime.sessions is not None:
        revoker = runtime.sessions
        counters.registry.register(
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
    webhooks = webhook_delivery(runtime, counters)  # a follower of the cycle: before it runs
    scheduler = CheckScheduler(
        services.cycle,
        services.snapshots,
        # Exemptions past their end date expire within seconds, without a restart.
        periodic=[*_mail_jobs(runtime, counters), *settle, (EXPIRY_SECONDS, _expire(runtime))],
        full_interval=services.feed.full_interval_seconds if services.feed else None,
    )
    # Cloudflare-side edits within seconds: the audit log polled (docs/feed.md).
    poller = FeedPoller(services.feed) if services.feed is not None else None
    # The watcher polls SQLite's data_version; D1 has no change signal over REST, so there
    # vault-api's notification (POST /iam/drift/check {"audiences": [...]}) and the periodic
    # check are the whole story.
    watcher = MembershipWatcher(services.vault, services.cycle) if lease is None else None
    app = create_app(_web_services(runtime, exposition))
    host, port = config.listen_address
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=True)
    )
    if lease is not None:
        lease.on_lost = lambda: setattr(server, "should_exit", True)
    scheduler.start()
    scheduler.run_now()
    if watcher is not None:
        watcher.start()
    if webhooks is not None:
        webhooks.start()
    if poller is not None:
        poller.start()
    log.info("serving", extra={"listen": f"{host}:{port}"})
    # uvicorn handles SIGTERM/SIGINT, then re-raises the signal once it has shut down;
    # a no-op handler turns that into a clean return, so `serve` exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        if watcher is not None:
            watcher.stop()
        if webhooks is not None:
            webhooks.stop()
        if poller is not None:
            poller.stop()
        scheduler.stop()
        with services.cycle.quiesced(timeout=60):  # let an in-flight write finish
            log.info("stopped")
    if lease is not None and lease.lost is not None:
        log.error("stopped: %s", lease.lost)
        return 2
    return 0


def _holder() -> str:
    """Who holds the lease, as another exporter's error message will name it."""
    return f"{socket.gethostname()} pid {os.getpid()} ({secrets.token_hex(3)})"


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


SETTLE_RETRY_SECONDS = 10


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


def _secrets(config: Config) -> list[str]:
    values = [
        config.cloudflare_api_token,
        config.d1_api_token,
        config.admin_token,
        config.read_token,
        config.smtp_password,
        config.webhook_secret,
        config.logpush_token,
    ]
    found = [v.get_secret_value() for v in values if v is not None]
    if config.webhook_secret is not None:  # also its key's base64 alone
        found.append(config.webhook_secret.get_secret_value().removeprefix("whsec_"))
    # A receiver's URL may carry a token (chat webhooks do): longest first, so a URL that
    # extends another is redacted whole.
    return sorted([*found, *config.webhook_urls], key=len, reverse=True)


@contextmanager
def _single_instance(database: Path) -> Iterator[None]:
    """Refuse a second ``serve`` on the same database: both would write the same rows."""
    lock_path = Path(f"{database}.vault-drift.lock")
    try:
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise VaultError(f"cannot create lock file {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        raise VaultError(
            f"another vault-drift serve is already running on {database} (lock {lock_path})"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)
