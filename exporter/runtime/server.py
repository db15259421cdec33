"""``vault-drift serve``: the long-running exporter (HTTP server, scheduler, watcher)."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.config import Config, ConfigError
from exporter.core.snapshot import Snapshot
from exporter.metrics import ExporterMetrics, StandbyExposition
from exporter.runtime.leading import Leader
from exporter.runtime.lease_keeper import (
    POLL_SECONDS,
    Claim,
    FileLock,
    Held,
    LeaseKeeper,
    LockHeld,
    standby_reason,
    wait_to_take,
)
from exporter.runtime.logs import setup_logging
from exporter.runtime.wiring import cloudflare_client, d1_store
from exporter.vault.d1 import D1Store
from exporter.vault.lease import LeaseHeld
from exporter.web.standby import StandbyState, create_standby_app

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
    cloudflare = cloudflare_client(config)
    holder = _holder()
    d1: D1Store | None = None
    claim: Claim
    if config.d1_database_id is None:
        claim = FileLock(Path(config.database), holder)
    else:
        # On D1 no lock file can exist: the writer lease of the database replaces it
        # (docs/design.md, "One writer").
        d1 = d1_store(config, cloudflare)
        d1.require_vault()
        claim = LeaseKeeper(d1, holder, config.d1_lease)
    leader = Leader(config, counters, after_full_check, cloudflare, d1)
    held = _try_take(claim, standby=config.standby)
    try:
        return _serve(config, claim, leader, held)
    finally:
        claim.release()


def _try_take(claim: Claim, standby: bool) -> Held | None:
    """None once the Vault is ours; who holds it when this ``serve`` is a standby (without
    ``--standby``, ``LeaseHeld`` or ``LockHeld``: exit 2)."""
    try:
        claim.take()
    except (LeaseHeld, LockHeld) as held:
        if not standby:
            raise
        return held
    return None


class Switch:
    """The ASGI application uvicorn serves: the standby's until this process leads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _serve(config: Config, claim: Claim, leader: Leader, held: Held | None) -> int:
    state = StandbyState()
    switch = Switch(create_standby_app(state, StandbyExposition()))
    host, port = config.listen_address
    server = uvicorn.Server(
        uvicorn.Config(
            switch, host=host, port=port, log_config=None, access_log=True, lifespan="off"
        )
    )
    claim.on_lost = lambda: setattr(server, "should_exit", True)
    follower = _Follower(claim, leader, switch, state, server)
    if held is None:
        switch.app = leader.start()
    else:
        follower.start(held)
    log.info("serving", extra={"listen": f"{host}:{port}", "standby": held is not None})
    # uvicorn handles SIGTERM/SIGINT, then re-raises the signal once it has shut down;
    # a no-op handler turns that into a clean return, so `serve` exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        follower.stop()
        leader.stop()
    if follower.failure is not None:
        raise follower.failure
    if claim.lost is not None:
        log.error("stopped: %s", claim.lost)
        return 2
    return 0


class _Follower:
    """A standby's thread: reads the lease every few seconds, takes over once it can."""

    def __init__(
        self, claim: Claim, leader: Leader, switch: Switch, state: StandbyState, server: Any
    ) -> None:
        self.claim, self.leader, self.switch, self.state = claim, leader, switch, state
        self.server = server
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="standby", daemon=True)

    def start(self, held: Held) -> None:
        self._waiting(held)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)  # a takeover under way finishes its start first

    def _waiting(self, held: Held) -> None:
        reason = standby_reason(held)
        if reason != self.state.reason:
            log.info(reason)
        self.state.reason = reason

    def _run(self) -> None:
        self._stop.wait(POLL_SECONDS)
        if not wait_to_take(self.claim, self._stop, self._waiting):
            return
        log.info("standby: took over, checking now")
        try:
            self.switch.app = self.leader.start()
        except Exception as exc:  # the Vault refused us (a newer schema...): exit 2
            self.failure = exc
            self.server.should_exit = True


def _holder() -> str:
    """Who holds the lease, as another exporter's error message will name it."""
    return f"{socket.gethostname()} pid {os.getpid()} ({secrets.token_hex(3)})"


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
