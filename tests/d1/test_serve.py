"""The real ``vault-drift`` on a D1 Vault: one writer (the lease), the commands' errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from support import free_port, wait_for
from support.d1_world import DATABASE_ID, World

from exporter.cloudflare.d1 import D1Client
from exporter.vault import VaultError
from exporter.vault.d1 import D1Store
from exporter.vault.lease import LeaseHeld

EXE = str(Path(sys.executable).parent / "vault-drift")
ADMIN = "d1-admin-token-0123456789"


class Served:
    def __init__(self, world: World, log: Path, lease: str = "3s") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **world.env(),
            "VAULT_DRIFT_ADMIN_TOKEN": ADMIN,
            "VAULT_DRIFT_LISTEN": f"127.0.0.1:{self.port}",
            "VAULT_DRIFT_D1_LEASE": lease,
        }
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [EXE, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def ready(self) -> bool:
        return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def serving(d1_backend: World, tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.kill()


def run(world: World, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args],
        env={**os.environ, **world.env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_one_writer_a_second_serve_is_refused_until_the_lease_of_a_killed_one_expires(
    d1_backend: World, serving: list[Served], tmp_path: Path
) -> None:
    first = Served(d1_backend, tmp_path / "first.log")
    serving.append(first)
    wait_for(first.ready, 30, "the first serve")
    second = run(
        d1_backend, "serve", "--listen", f"127.0.0.1:{free_port()}", VAULT_DRIFT_D1_LEASE="3s"
    )
    assert second.returncode == 2
    [line] = second.stderr.strip().splitlines()
    assert "holds this D1 database" in line and "pid" in line and "lease expires at" in line
    assert "demo-token" not in second.stderr
    # The holder is killed: nobody renews; once its lease has expired, a new serve takes over.
    first.kill()
    time.sleep(3.5)
    third = Served(d1_backend, tmp_path / "third.log")
    serving.append(third)
    wait_for(third.ready, 30, "the serve that took the lease over")
    holder = d1_backend.sql("SELECT holder FROM sys_infra_drift_lease")
    assert holder and f"pid {third.process.pid}" in holder[0][0]
    # A clean stop gives the lease back at once.
    third.process.send_signal(signal.SIGTERM)
    assert third.process.wait(timeout=30) == 0
    assert d1_backend.sql("SELECT count(*) FROM sys_infra_drift_lease") == [(0,)]


def test_a_serve_whose_lease_was_taken_over_stops_writing_and_exits_2(
    d1_backend: World, serving: list[Served], tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    served = Served(d1_backend, log)
    serving.append(served)
    wait_for(served.ready, 30, "serve")
    # Another exporter took the lease (say, after this one was cut off past its expiry).
    d1_backend.sql(
        "UPDATE sys_infra_drift_lease SET holder = ?, expires_at = ?",
        ("other-host pid 1 (abcdef)", "2099-01-01T00:00:00Z"),
    )
    assert served.process.wait(timeout=30) == 2
    said = log.read_text()
    assert "taken over (other-host pid 1 (abcdef)" in said and "writes stopped" in said
    assert d1_backend.sql("SELECT holder FROM sys_infra_drift_lease") == [
        ("other-host pid 1 (abcdef)",)
    ]


def test_one_shot_commands_take_no_lease_and_work_beside_serve(
    d1_backend: World, serving: list[Served], tmp_path: Path
) -> None:
    served = Served(d1_backend, tmp_path / "serve.log", lease="60s")
    serving.append(served)
    wait_for(served.ready, 30, "serve")
    check = run(d1_backend, "check", "--json")
    assert check.returncode == 2  # sales-team's group is gone: error
    sync = run(d1_backend, "sync", "--audience", "lms-instructors")
    assert sync.returncode == 0, sync.stderr
    report = run(d1_backend, "report", "--period", "1d", "--out", str(tmp_path / "digest.html"))
    assert report.returncode == 0, report.stderr
    assert "lms-instructors" in (tmp_path / "digest.html").read_text()
    metrics = requests.get(f"{served.url}/metrics", timeout=5).text
    assert (
        'vault_drift_cloudflare_requests_total{api="d1",method="POST",status_class="2xx"}'
        in metrics
    )
    assert "vault_drift_d1_rows_read_total" in metrics


@pytest.mark.parametrize(
    "database, token, expected",
    [
        (
            "d1://not-a-uuid",
            "demo-token",
            "VAULT_DRIFT_DATABASE: d1:// must be followed by a D1 database id",
        ),
        ("d1://11111111-2222-4333-8444-555555555555", "demo-token", "not found in this account"),
        (f"d1://{DATABASE_ID}", "a-token-without-d1-rights", "not allowed to use it"),
    ],
)
def test_a_bad_database_or_token_is_one_line_and_exit_2(
    d1_backend: World, database: str, token: str, expected: str
) -> None:
    result = run(d1_backend, "check", VAULT_DRIFT_DATABASE=database, VAULT_DRIFT_D1_API_TOKEN=token)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert expected in line
    assert token not in line


def test_writes_stop_before_a_lease_that_could_not_be_renewed_runs_out(d1_backend: World) -> None:
    now = [1000.0]
    cloudflare = d1_backend.cloudflare()
    client = D1Client(
        base_url=d1_backend.base_url,
        account_id="demo-account",
        database_id=DATABASE_ID,
        token="demo-token",
        gate=cloudflare.rate_gate,
        stats=cloudflare.stats,
    )
    store = D1Store(client, monotonic=lambda: now[0]).open()
    store.acquire_lease("me", d1_backend.clock(), ttl=60)
    other = d1_backend.store()
    assert isinstance(other, D1Store)
    with pytest.raises(LeaseHeld, match="holder me"):
        other.acquire_lease("them", d1_backend.clock(), ttl=60)
    now[0] += 30
    assert store.renew_lease(d1_backend.clock())
    store.clear_ignore("developers")  # a write within the lease
    now[0] += 41  # no renewal for 41 s: two thirds of 60 s
    with pytest.raises(VaultError, match="lease could not be renewed"):
        store.clear_ignore("developers")
    # Its lease expired unrenewed: another process takes it over; the first one lost it.
    d1_backend.clock.advance(seconds=61)
    other.acquire_lease("them", d1_backend.clock(), ttl=60)
    assert not store.renew_lease(d1_backend.clock() + timedelta(seconds=1))
    with pytest.raises(VaultError, match="lease"):
        store.clear_ignore("developers")


def test_kill_9_between_read_and_write_loses_and_doubles_nothing(
    backend: World, tmp_path: Path
) -> None:
    """Every backend: a serve killed at random points of its checks (reads done, the write in
    flight or not sent) leaves the persisted drift exactly as one clean check would."""
    import random

    first = Served(backend, tmp_path / "serve.log")
    try:
        wait_for(first.ready, 30, "serve")
    finally:
        first.kill()
    onset = backend.sql(
        "SELECT opened_at FROM sys_infra_drift_episode WHERE audience = 'lms-instructors'"
    )
    seen = backend.sql(
        "SELECT kind, email, first_seen_at FROM sys_infra_drift_member ORDER BY kind, email"
    )
    chance = random.Random(7)
    for _ in range(3):
        if backend.is_d1:
            time.sleep(3.5)  # the killed holder's lease (3 s) runs out
        served = Served(backend, tmp_path / "serve.log")
        time.sleep(chance.uniform(0.3, 1.5))
        served.kill()
    if backend.is_d1:
        time.sleep(3.5)
    last = Served(backend, tmp_path / "serve.log")
    try:
        wait_for(last.ready, 30, "serve after the kills")
    finally:
        last.kill()
    assert (
        backend.sql(
            "SELECT opened_at FROM sys_infra_drift_episode WHERE audience = 'lms-instructors'"
        )
        == onset
    )  # one episode, its onset never moved
    assert (
        backend.sql(
            "SELECT kind, email, first_seen_at FROM sys_infra_drift_member ORDER BY kind, email"
        )
        == seen
    )
    assert (
        backend.sql(
            "SELECT audience FROM sys_infra_drift_episode WHERE closed_at IS NULL"
            " GROUP BY audience HAVING count(*) > 1"
        )
        == []
    )
    assert backend.sql(
        "SELECT count(*) FROM sys_infra_drift_state WHERE episode_id IS NOT NULL"
        " AND episode_id NOT IN (SELECT id FROM sys_infra_drift_episode WHERE closed_at IS NULL)"
    ) == [(0,)]
