"""``vault-drift serve``: the long-running exporter (HTTP server, scheduler, watcher)."""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from exporter.cloudflare.ratelimit import ClientStats
from exporter.config import Config, ConfigError
from exporter.core.snapshot import Snapshot
from exporter.logs import setup_logging
from exporter.metrics import ExporterMetrics, build_exposition
from exporter.runtime import Runtime, build_runtime
from exporter.scheduler import CheckScheduler
from exporter.vault import VaultError
from exporter.vault.operator import audit_rows
from exporter.watcher import MembershipWatcher
from exporter.web import create_app
from exporter.web.app import Services
from exporter.web.auth import Tokens

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


def serve(config: Config, runtime: Runtime | None = None) -> int:
    check_listen(config)
    setup_logging(config.log_level, _secrets(config))
    with _single_instance(config.database):
        metrics = _Metrics()
        runtime = runtime or build_runtime(config, events=metrics)
        runtime.engine.events = metrics.bind(runtime)
        settle = _settle(runtime)
        scheduler = CheckScheduler(
            runtime.engine, runtime.syncer, periodic=_mail_jobs(runtime, metrics) + settle
        )
        watcher = MembershipWatcher(runtime.engine)
        app = create_app(_services(runtime, metrics, config))
        host, port = config.listen_address
        server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_config=None, access_log=True)
        )
        scheduler.start()
        scheduler.run_now()
        watcher.start()
        log.info("serving", extra={"listen": f"{host}:{port}"})
        # uvicorn handles SIGTERM/SIGINT, then re-raises the signal once it has shut down;
        # a no-op handler turns that into a clean return, so `serve` exits 0.
        signal.signal(signal.SIGTERM, lambda *_: None)
        try:
            server.run()
        finally:
            watcher.stop()
            scheduler.stop()
            with runtime.engine.exclusive(timeout=60):  # let an in-flight write finish
                log.info("stopped")
    return 0


class _Metrics:
    """Registry and counters, created before the engine exists and bound to it after."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.exposition, self.counters = build_exposition(self._snapshot, self._stats)

    def bind(self, runtime: Runtime) -> ExporterMetrics:
        self.runtime = runtime
        return self.counters

    def _snapshot(self) -> Snapshot:
        return self.runtime.engine.snapshot if self.runtime else Snapshot()

    def _stats(self) -> dict[str, Any]:
        stats = self.runtime.cloudflare.stats if self.runtime else ClientStats()
        return stats.snapshot()

    def checked(self, scope: str, success: bool, seconds: float) -> None:
        self.counters.checked(scope, success, seconds)

    def synced(self, trigger: str, result: str, blocked_reason: str | None) -> None:
        self.counters.synced(trigger, result, blocked_reason)


def _services(runtime: Runtime, metrics: _Metrics, config: Config) -> Services:
    return Services(
        engine=runtime.engine,
        syncer=runtime.syncer,
        exposition=metrics.exposition,
        tokens=Tokens(config.admin_token, config.read_token),
        public_url=config.effective_public_url(),
        session_secret=secrets.token_urlsafe(32),
    )


SETTLE_RETRY_SECONDS = 10


def _settle(runtime: Runtime) -> list[tuple[int, Callable[[], None]]]:
    """Settle the syncs a previous process left in progress, now and, while Cloudflare cannot
    be read (down, rate limited), again every few seconds: none stays ``in_progress``."""
    with runtime.db.connect() as conn:
        left = audit_rows(conn, result="in_progress", limit=1)
    if not left:
        return []
    ceiling = int(left[0]["id"])

    def settle() -> None:
        with runtime.engine.exclusive(timeout=60):
            settled = runtime.syncer.settle_interrupted(up_to_id=ceiling)
        if settled:
            log.warning("settled %d sync(s) interrupted by a previous stop", settled)

    try:
        settle()
    except Exception:
        log.exception("could not settle interrupted syncs yet; will retry")
    return [(SETTLE_RETRY_SECONDS, settle)]


def _mail_jobs(runtime: Runtime, metrics: _Metrics) -> list[tuple[int, Callable[[], None]]]:
    if not runtime.config.mail_enabled:
        log.info("mail is off: VAULT_DRIFT_SMTP_HOST, _MAIL_FROM and _MAIL_TO are not all set")
        return []
    from exporter.cli.report import install_mail  # pandas and matplotlib load only when mail is on

    return install_mail(runtime, metrics.counters)


def _secrets(config: Config) -> list[str]:
    values = [
        config.cloudflare_api_token,
        config.admin_token,
        config.read_token,
        config.smtp_password,
    ]
    return [v.get_secret_value() for v in values if v is not None]


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
