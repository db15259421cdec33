"""The real ``vault-drift serve``: a bad secret stops it (exit 2); an event still pending when
it is killed (-9) is delivered by the next one, with the same id."""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support import free_port, wait_for
from support.webhook_receiver import Script, WebhookReceiver

EXE = str(Path(sys.executable).parent / "vault-drift")
SECRET = "whsec_" + base64.b64encode(b"serve-secret-of-thirty-two-bytes").decode()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as running:
        yield running


def serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full = {**os.environ, **env, "VAULT_DRIFT_LISTEN": f"127.0.0.1:{port}"}
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [EXE, "serve"], env=full, stdout=subprocess.DEVNULL, stderr=stderr
        )
    return process, f"http://127.0.0.1:{port}"


def outbox_ids(database: str) -> list[str]:
    with sqlite3.connect(database, timeout=10) as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM sys_infra_drift_outbox")]


def test_a_pending_event_survives_kill_9_and_is_delivered_after_the_restart(
    cli_env: dict[str, str], receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.scripts["/hook"] = Script(then=503)  # down: the first serve cannot deliver
    env = {
        **cli_env,
        "VAULT_DRIFT_WEBHOOK_URLS": receiver.url("/hook"),
        "VAULT_DRIFT_WEBHOOK_SECRET": SECRET,
    }
    log = tmp_path / "serve.log"
    first, _ = serve(env, log)
    try:
        wait_for(lambda: any(True for _ in receiver.all()), 30, "a first attempt")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    tried = {d.webhook_id for d in receiver.all()}
    assert tried == set(outbox_ids(cli_env["VAULT_DRIFT_DATABASE"])) and len(tried) == 1

    receiver.scripts["/hook"] = Script(then=204)  # back up
    second, url = serve(env, log)
    try:
        wait_for(lambda: bool(receiver.taken()), 30, "the delivery after the restart")
        (taken,) = receiver.taken()
        assert taken.webhook_id in tried and taken.verified and taken.type == "drift.opened"
        database = cli_env["VAULT_DRIFT_DATABASE"]
        wait_for(lambda: outbox_ids(database) == [], 10, "the outbox emptied")

        def metrics() -> str:
            return requests.get(f"{url}/metrics", timeout=5).text

        wait_for(lambda: "vault_drift_webhook_outbox_size 0.0" in metrics(), 10, "the gauge")
        assert 'vault_drift_webhook_deliveries_total{result="ok"} 1.0' in metrics()
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    # the restart's own check saw the same drift: not announced a second time
    assert [d.type for d in receiver.all() if d.status == 204] == ["drift.opened"]
    assert SECRET.removeprefix("whsec_") not in log.read_text()
    assert "/hook" not in log.read_text()  # the receiver is named by its host only


@pytest.mark.parametrize(
    "secret",
    ["whsec_" + base64.b64encode(b"too short").decode(), "not-a-whsec-secret-at-all-xx"],
)
def test_a_bad_secret_stops_serve_with_exit_2_and_one_line(
    cli_env: dict[str, str], tmp_path: Path, secret: str
) -> None:
    env = {**cli_env, "VAULT_DRIFT_WEBHOOK_URLS": "https://hooks.example.com/x"}
    env["VAULT_DRIFT_WEBHOOK_SECRET"] = secret
    process, _ = serve(env, tmp_path / "serve.log")
    assert process.wait(30) == 2
    lines = (tmp_path / "serve.log").read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "vault-drift: config: VAULT_DRIFT_WEBHOOK_SECRET:"
    )
    assert secret not in lines[0] and secret.removeprefix("whsec_") not in lines[0]


def test_receivers_without_a_secret_stop_serve(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "VAULT_DRIFT_WEBHOOK_URLS": "https://hooks.example.com/x"}
    process, _ = serve(env, tmp_path / "serve.log")
    assert process.wait(30) == 2
    assert "VAULT_DRIFT_WEBHOOK_SECRET: required" in (tmp_path / "serve.log").read_text()
