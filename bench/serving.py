"""A real ``vault-drift serve`` for the benchmarks: on a free loopback port, with the bench's
admin token, and waited for until ``/readyz`` answers 200."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

EXE = str(Path(sys.executable).parent / "vault-drift")
ADMIN = "bench-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(
    settings: dict[str, str], log: str | None = None, ready_within: float = 300
) -> tuple[subprocess.Popen[bytes], str]:
    """``serve`` with these variables on top of the environment (the simulator's token
    ``demo-token`` and the bench's admin token unless they say otherwise); its log goes to
    the file ``log`` at level info, else nowhere."""
    port = free_port()
    env = {
        **os.environ,
        "CLOUDFLARE_API_TOKEN": "demo-token",
        "VAULT_DRIFT_ADMIN_TOKEN": ADMIN,
        "VAULT_DRIFT_LOG_LEVEL": "info" if log else "warning",
        **settings,
        "VAULT_DRIFT_LISTEN": f"127.0.0.1:{port}",
    }
    stderr = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen([EXE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("serve did not become ready")


def nearest_rank(values: list[float], share: float) -> float:
    """The ``share`` percentile by the nearest-rank method (p95 of 40 rounds: the 38th)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]
