"""Session revocations survive a kill -9 of ``serve``, on the file, the simulated D1 and
workerd's D1: recorded before they are sent, sent by the next process (README, "Effective
removal")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_for
from support.d1_world import World
from test_serve import Served

OLDUSER = "olduser@example.com"
PENDING = "SELECT count(*) FROM sys_infra_drift_session_revocation WHERE state = 'pending'"


@pytest.fixture
def serving(backend: World) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.kill()


def test_a_pending_revocation_is_sent_by_the_process_after_a_kill_9(
    backend: World, serving: list[Served], tmp_path: Path
) -> None:
    backend.services().decisions.update_settings({"auto_sync": "remove_only"})
    backend.simulator.sessions.denied.add("demo-token")  # the first process cannot revoke

    first = Served(backend, tmp_path / "first.log", lease="3s")
    serving.append(first)
    wait_for(lambda: backend.sql(PENDING) == [(1,)], 30, "the revocation recorded")
    first.kill()
    assert backend.simulator.sessions.revocations() == []

    backend.simulator.sessions.denied.clear()
    time.sleep(3.5)  # on D1, the killed process's lease runs out first
    second = Served(backend, tmp_path / "second.log", lease="3s")
    serving.append(second)
    wait_for(lambda: backend.sql(PENDING) == [(0,)], 30, "the revocation sent")

    assert backend.simulator.sessions.revoked_emails() == [OLDUSER]
    rows = backend.sql("SELECT email, reason, state FROM sys_infra_drift_session_revocation")
    assert rows == [(OLDUSER, "auto_sync", "revoked")]
    # The kill may land between the record and the refused attempt: one attempt or two.
    [(attempts,)] = backend.sql("SELECT attempts FROM sys_infra_drift_session_revocation")
    assert attempts in (1, 2)
