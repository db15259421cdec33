"""``vault-drift serve`` as users run it: a real process on loopback against the simulator."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support import free_port, wait_for

from exporter.clock import utc_now
from exporter.demo.sample import add_member, build_sample
from exporter.demo.simulator import CloudflareSimulator

ADMIN = "serve-admin-token-0123456789"
EXE = str(Path(sys.executable).parent / "vault-drift")


class Served:
    def __init__(
        self,
        database: Path,
        simulator: CloudflareSimulator,
        log: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "VAULT_DRIFT_DATABASE": str(database),
            "CLOUDFLARE_API_TOKEN": "demo-token",
            "CLOUDFLARE_ACCOUNT_ID": "demo-account",
            "CLOUDFLARE_BASE_URL": simulator.base_url,
            "VAULT_DRIFT_ADMIN_TOKEN": ADMIN,
            "VAULT_DRIFT_LISTEN": f"127.0.0.1:{self.port}",
            **(extra_env or {}),
        }
        self.env = env
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [EXE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )
        wait_for(self.ready, 30, "/readyz")

    def ready(self) -> bool:
        return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200

    def metrics(self) -> str:
        return requests.get(f"{self.url}/metrics", timeout=5).text

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def world(tmp_path: Path, simulator: CloudflareSimulator) -> Path:
    database = tmp_path / "vault.db"
    build_sample(database, simulator, utc_now())
    return database


@pytest.fixture
def served(world: Path, simulator: CloudflareSimulator, tmp_path: Path) -> Iterator[Served]:
    server = Served(world, simulator, tmp_path / "serve.log")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def series(text: str, name: str, audience: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and f'audience="{audience}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_vault_change_shows_on_metrics_within_seconds(served: Served, world: Path) -> None:
    assert series(served.metrics(), "vault_drift_audience_members_missing", "developers") == 0
    with sqlite3.connect(world) as conn:
        add_member(conn, "newcomer@example.com", "g-2", utc_now())
    changed = time.monotonic()
    wait_for(
        lambda: series(served.metrics(), "vault_drift_audience_members_missing", "developers") == 1,
        15,
        "the change-driven check",
    )
    assert time.monotonic() - changed < 15
    assert served.stop() == 0


def test_a_second_serve_on_the_same_database_is_refused(served: Served) -> None:
    second = subprocess.run(
        [EXE, "serve", "--listen", f"127.0.0.1:{free_port()}"],
        env=served.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 2
    assert "already running" in second.stderr
    assert served.ready()


def test_drift_start_and_settings_survive_a_restart(
    served: Served, world: Path, simulator: CloudflareSimulator, tmp_path: Path
) -> None:
    name = "vault_drift_audience_drift_started_timestamp_seconds"
    started = series(served.metrics(), name, "lms-instructors")
    assert started is not None
    saved = requests.put(
        f"{served.url}/iam/drift/settings",
        json={"check_interval_seconds": 120, "full_check_interval_seconds": 600},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert saved.status_code == 200
    # the change feed is healthy: full checks run at its safety-net interval
    assert "vault_drift_check_interval_seconds 600.0" in served.metrics()
    assert served.stop() == 0
    time.sleep(1.1)
    again = Served(world, simulator, tmp_path / "serve2.log")
    try:
        assert series(again.metrics(), name, "lms-instructors") == started
        assert "vault_drift_check_interval_seconds 600.0" in again.metrics()
        document = requests.get(
            f"{again.url}/iam/drift/settings",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        ).json()
        assert document["check_interval_seconds"] == 120
    finally:
        assert again.stop() == 0


def test_logs_are_json_lines_without_secrets(served: Served) -> None:
    requests.get(f"{served.url}/iam/drift", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5)
    requests.get(f"{served.url}/iam/drift", headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert served.stop() == 0
    lines = served.log.read_text().splitlines()
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= set(entry)
    text = "\n".join(lines)
    assert ADMIN not in text and "demo-token" not in text
    assert "@example.com" not in text  # no member email above DEBUG


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def test_serve_mails_a_critical_drift_once_across_restarts(
    world: Path, simulator: CloudflareSimulator, tmp_path: Path
) -> None:
    from aiosmtpd.controller import Controller

    two_days_ago = "2026-11-20T10:00:00Z"
    with sqlite3.connect(world) as conn:  # lms-instructors has drifted for days already
        conn.executescript(Path("exporter/sql/companion.sql").read_text())
        conn.execute(
            "INSERT INTO sys_infra_drift_episode (id, audience, namespace, opened_at)"
            " VALUES (1, 'lms-instructors', 'lms', ?)",
            (two_days_ago,),
        )
        conn.execute(
            "INSERT INTO sys_infra_drift_state (audience, drift_since, episode_id)"
            " VALUES ('lms-instructors', ?, 1)",
            (two_days_ago,),
        )
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    mail_env = {
        "VAULT_DRIFT_SMTP_HOST": "127.0.0.1",
        "VAULT_DRIFT_SMTP_PORT": str(port),
        "VAULT_DRIFT_SMTP_STARTTLS": "false",
        "VAULT_DRIFT_SMTP_PASSWORD": "smtp-password-never-shown",
        "VAULT_DRIFT_MAIL_FROM": "vault-drift@example.org",
        "VAULT_DRIFT_MAIL_TO": "iam@example.org, sre@example.org",
        "VAULT_DRIFT_PUBLIC_URL": "https://drift.example.org",
    }
    try:
        first = Served(world, simulator, tmp_path / "mail.log", mail_env)
        wait_for(lambda: len(inbox.messages) >= 1, 20, "the critical mail")
        text = first.metrics()
        assert 'vault_drift_mails_total{kind="critical",result="sent"} 1.0' in text
        assert first.stop() == 0
        recipients, content = inbox.messages[0]
        assert recipients == ["iam@example.org", "sre@example.org"]
        assert b'Drift detected in "lms-instructors"' in content
        assert b"https://drift.example.org/" in content
        second = Served(world, simulator, tmp_path / "mail2.log", mail_env)
        time.sleep(3)  # a full check ran: nothing more is sent for the same episode
        assert second.stop() == 0
        assert len(inbox.messages) == 1
        logs = (tmp_path / "mail.log").read_text() + (tmp_path / "mail2.log").read_text()
        assert "smtp-password-never-shown" not in logs
    finally:
        controller.stop()


def _serve_on_a_terminal(world: Path, simulator: CloudflareSimulator, env: dict[str, str]) -> str:
    """``serve`` with its stderr on a pseudo-terminal, as at a shell; what it wrote there."""
    import pty
    import select

    primary, secondary = pty.openpty()
    port = free_port()
    process = subprocess.Popen(
        [EXE, "serve"],
        env={
            **os.environ,
            "VAULT_DRIFT_DATABASE": str(world),
            "CLOUDFLARE_API_TOKEN": "demo-token",
            "CLOUDFLARE_ACCOUNT_ID": "demo-account",
            "CLOUDFLARE_BASE_URL": simulator.base_url,
            "VAULT_DRIFT_ADMIN_TOKEN": ADMIN,
            "VAULT_DRIFT_LISTEN": f"127.0.0.1:{port}",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    out = b""
    try:
        wait_for(
            lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200,
            30,
            "/readyz",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        while select.select([primary], [], [], 0.5)[0]:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal's other side closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)
    return out.decode()


def test_logs_on_a_terminal_are_text_lines(world: Path, simulator: CloudflareSimulator) -> None:
    lines = [line for line in _serve_on_a_terminal(world, simulator, {}).splitlines() if line]
    assert lines
    for line in lines:
        assert not line.lstrip().startswith("{"), line
    assert any(" INFO " in line for line in lines), lines
    assert ADMIN not in "\n".join(lines) and "demo-token" not in "\n".join(lines)


def test_log_format_json_is_kept_on_a_terminal(world: Path, simulator: CloudflareSimulator) -> None:
    out = _serve_on_a_terminal(world, simulator, {"VAULT_DRIFT_LOG_FORMAT": "json"})
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["msg"] for line in lines)
