"""``serve --standby``: two replicas on one Vault (a file, the simulated D1, workerd's D1),
exactly one leads; kill -9 or SIGTERM the leader and the standby takes over with the drift
the store keeps, and no write ever comes from both (README, "High availability")."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from support import free_port, wait_for
from support.d1_world import World

EXE = str(Path(sys.executable).parent / "vault-drift")
ADMIN = "standby-admin-token-0123456789"
LEASE = 3  # seconds: the D1 lease of these tests
POLL = 5  # a standby reads the lease this often
MUTATING = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)", re.IGNORECASE)


class WriteLog(ThreadingHTTPServer):
    """A loopback proxy in front of both Cloudflare APIs for one process: forwards everything
    and notes when each write (a D1 statement that changes rows, an Access call that is not a
    read) was sent and answered. The lease's own statements are not writes of the Vault."""

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream.rstrip("/")  # "file": the Vault is not behind it
        self.writes: list[tuple[float, float]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: WriteLog

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        sent = time.monotonic()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
        answer = requests.request(
            self.command, self.server.upstream + self.path, data=body, headers=headers, timeout=30
        )
        if _is_write(self.command, self.path, body):
            self.server.writes.append((sent, time.monotonic()))
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in (
                "content-length",
                "content-encoding",
                "transfer-encoding",
                "connection",
            ):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, *args: object) -> None:
        pass


def _is_write(method: str, path: str, body: bytes | None) -> bool:
    if "/d1/database/" not in path:
        return method != "GET"
    document = json.loads(body or b"{}")
    statements = document.get("batch", [document])
    return any(
        MUTATING.match(s["sql"]) and "sys_infra_drift_lease" not in s["sql"] for s in statements
    )


class Replica:
    def __init__(self, world: World, log: Path, **extra: str) -> None:
        self.proxy = WriteLog(world.base_url if world.is_d1 else "file")
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            **world.env(),
            "CLOUDFLARE_BASE_URL": self.proxy.url if world.is_d1 else world.base_url,
            "VAULT_DRIFT_ADMIN_TOKEN": ADMIN,
            "VAULT_DRIFT_LISTEN": f"127.0.0.1:{self.port}",
            "VAULT_DRIFT_D1_LEASE": f"{LEASE}s",
            **extra,
        }
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [EXE, "serve", "--standby"], env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=5)

    def answering(self) -> bool:
        try:
            return self.get("/healthz").status_code == 200
        except requests.ConnectionError:
            return False

    def ready(self) -> bool:
        try:
            return self.get("/readyz").status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self, sig: signal.Signals) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(timeout=60)

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        self.proxy.shutdown()
        self.proxy.server_close()


@pytest.fixture
def replicas(backend: World) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.close()


def drift_since(replica: Replica, audience: str) -> str:
    for line in replica.get("/metrics").text.splitlines():
        if line.startswith("vault_drift_audience_drift_started_timestamp_seconds{") and (
            f'audience="{audience}"' in line
        ):
            return line.rsplit(" ", 1)[1]
    raise AssertionError(f"no drift start for {audience}")


def leader_and_standby(replicas: list[Replica]) -> tuple[Replica, Replica]:
    wait_for(lambda: all(r.answering() for r in replicas), 60, "both replicas answer")
    wait_for(lambda: any(r.ready() for r in replicas), 60, "one replica leads")
    [leader] = [r for r in replicas if r.ready()]
    [standby] = [r for r in replicas if r is not leader]
    return leader, standby


def assert_is_standby(standby: Replica, leader: Replica) -> None:
    pid = f"pid {leader.process.pid} "
    assert standby.get("/healthz").status_code == 200
    # A standby that read the lock between its taking and the holder's line says "unknown"
    # until its next read of the lease (every 5 s).
    wait_for(lambda: pid in standby.get("/readyz").text, 15, "the standby names the leader")
    ready = standby.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["detail"].startswith("standby: lease held by ")
    assert pid in ready.json()["detail"] and " until " in ready.json()["detail"]
    metrics = standby.get("/metrics").text
    assert re.search(r"^vault_drift_leader 0(\.0)?$", metrics, flags=re.MULTILINE)
    assert "vault_drift_build_info{" in metrics and "process_start_time_seconds" in metrics
    assert "vault_drift_audience_" not in metrics
    assert "vault_drift_last_check_success_timestamp_seconds" not in metrics
    api = requests.get(
        f"{standby.url}/iam/drift", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5
    )
    assert api.status_code == 503 and pid in api.json()["detail"]
    page = standby.get("/")
    assert page.status_code == 503 and pid in page.text


def no_write_from_two(first: Replica, then: Replica) -> None:
    """Every write of the old leader was answered before the new one sent its first (on D1:
    a file's writes do not pass the proxy; there the kernel's lock keeps one writer)."""
    if first.proxy.upstream == "file":
        return
    assert first.proxy.writes and then.proxy.writes
    assert max(end for _, end in first.proxy.writes) < min(s for s, _ in then.proxy.writes)


def test_one_leads_and_a_standby_takes_over_after_kill_9_and_after_sigterm(
    backend: World, replicas: list[Replica], tmp_path: Path
) -> None:
    replicas += [Replica(backend, tmp_path / "a.log"), Replica(backend, tmp_path / "b.log")]
    leader, standby = leader_and_standby(replicas)
    assert re.search(r"^vault_drift_leader 1(\.0)?$", leader.get("/metrics").text, re.MULTILINE)
    assert_is_standby(standby, leader)
    onset = drift_since(leader, "lms-instructors")

    # kill -9: nobody gives the lease back; the standby takes it once it has expired.
    leader.stop(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(standby.ready, LEASE + POLL + 30, "the standby takes over after kill -9")
    took = time.monotonic() - killed
    assert drift_since(standby, "lms-instructors") == onset
    no_write_from_two(leader, standby)

    # SIGTERM: the leader gives the lease back; a new standby takes it at its next read.
    third = Replica(backend, tmp_path / "c.log")
    replicas.append(third)
    wait_for(third.answering, 60, "a third replica")
    assert_is_standby(third, standby)
    standby.stop(signal.SIGTERM)
    assert standby.process.returncode == 0
    stopped = time.monotonic()
    wait_for(third.ready, POLL + 30, "the standby takes over after SIGTERM")
    handed = time.monotonic() - stopped
    assert drift_since(third, "lms-instructors") == onset
    no_write_from_two(standby, third)
    print(f"takeover after kill -9: {took:.1f} s, after SIGTERM: {handed:.1f} s")


def test_without_standby_a_second_serve_still_exits_2(
    backend: World, replicas: list[Replica], tmp_path: Path
) -> None:
    replicas.append(Replica(backend, tmp_path / "a.log"))
    wait_for(replicas[0].ready, 60, "the leader")
    second = subprocess.run(
        [EXE, "serve", "--listen", f"127.0.0.1:{free_port()}"],
        env={**os.environ, **backend.env(), "VAULT_DRIFT_D1_LEASE": f"{LEASE}s"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2
    assert "already running" in second.stderr or "holds this D1 database" in second.stderr


def test_two_replicas_starting_together_migrate_and_seed_once(
    backend: World, replicas: list[Replica], tmp_path: Path
) -> None:
    """The world's Vault has no companion tables yet: both start on a bare Vault, both with
    an interval to seed."""
    replicas += [
        Replica(backend, tmp_path / f"{n}.log", VAULT_DRIFT_CHECK_INTERVAL="7m") for n in "ab"
    ]
    leader_and_standby(replicas)
    assert backend.sql("SELECT count(*) FROM sys_infra_drift_schema") == [(1,)]
    assert backend.sql(
        "SELECT value FROM sys_infra_drift_settings WHERE key = 'check_interval_seconds'"
    ) == [("420",)]
