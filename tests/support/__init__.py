"""Helpers shared by the test folders (importable as ``support``: tests/ is on sys.path)."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.cloudflare.client import CloudflareClient
from exporter.demo.simulator import CloudflareSimulator

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def require_tool(name: str) -> str:
    """Path of a system tool; under CI=true a missing tool fails the test instead of skipping."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path:
        return path
    message = f"{name} is not installed (make test installs it: scripts/install-system-tools)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def make_client(
    simulator: CloudflareSimulator, token: str = "demo-token", **kwargs: float
) -> CloudflareClient:
    return CloudflareClient(
        base_url=simulator.base_url,
        account_id="demo-account",
        token=token,
        timeout=kwargs.pop("timeout", 5.0),
        **kwargs,  # type: ignore[arg-type]
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; connection errors count as "not yet"."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class FixedClock:
    """A clock tests set and advance (the exporter takes its clock as an argument)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
