"""The README's ten-line receiver, run as written, takes what the dispatcher sends and
refuses what was not signed with its secret."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import FixedClock

from exporter.core.signing import decode_secret
from exporter.core.webhooks import Announcer, Event, destination_key
from exporter.vault import SqliteStore
from exporter.vault.store import CheckRecord
from exporter.webhooks.delivery import Dispatcher, Receiver

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "whsec_" + base64.b64encode(b"the-readme-receiver-secret-32-b!").decode()
URL = "http://receiver.test/in/vault-drift"


def readme_receiver(monkeypatch: pytest.MonkeyPatch, secret: str) -> Any:
    text = README.read_text()
    section = text[text.index("## Webhooks") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    lines = [line for line in code.group(1).splitlines() if line.strip()]
    assert len(lines) <= 12, "the README promises a receiver in about ten lines"
    monkeypatch.setenv("VAULT_DRIFT_WEBHOOK_SECRET", secret)
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    return namespace["app"]


class AppTransport:
    """Posts to an ASGI app in process (its TestClient), the receiver's answer as status."""

    def __init__(self, app: Any) -> None:
        self.client = TestClient(app)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        return self.client.post(url, content=body, headers=headers).status_code


def test_the_readme_receiver_verifies_and_refuses(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    empty_vault: Path,
    clock: FixedClock,
) -> None:
    store = SqliteStore(empty_vault).open()
    announcer = Announcer((destination_key(URL),), "http://x", lambda: "msg_readme")
    event = Event("drift.opened", "lms", clock(), {"audience": "lms"})
    record = CheckRecord(
        checks=[], previous={}, at=clock(), outbox=tuple(announcer.entries([event]))
    )
    store.record_checks(record)
    statuses: list[int] = []

    class Recording(AppTransport):
        def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
            statuses.append(super().post(url, body, headers))
            return statuses[-1]

    other = "whsec_" + base64.b64encode(bytes(32)).decode()
    for secret in (other, SECRET):  # a receiver with another secret refuses: 401
        app = readme_receiver(monkeypatch, secret)
        Dispatcher(
            store, [Receiver(URL)], decode_secret(SECRET), Recording(app), clock=clock
        ).run_once()
        clock.advance(seconds=1)
    assert statuses == [401, 204]
    assert "msg_readme drift.opened lms" in capsys.readouterr().out
    assert store.outbox(10) == ([], 0)
    assert clock() - event.timestamp < timedelta(minutes=5)
