"""The lock file of a Vault file and the standby's wait, without processes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from exporter.runtime.lease_keeper import FileLock, Held, LockHeld, standby_reason, wait_to_take
from exporter.vault.lease import LeaseHeld
from exporter.vault.store import VaultError


def test_a_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = FileLock(tmp_path / "vault.db", "host-a pid 1 (aaaaaa)")
    first.take()
    second = FileLock(tmp_path / "vault.db", "host-b pid 2 (bbbbbb)")
    with pytest.raises(LockHeld, match="already running") as held:
        second.take()
    assert held.value.holder == "host-a pid 1 (aaaaaa)"
    assert standby_reason(held.value).startswith("standby: lease held by host-a pid 1 (aaaaaa) ")
    first.release()
    second.take()  # given back: the next one takes it
    second.release()


def test_the_d1_reason_names_holder_and_expiry() -> None:
    held = LeaseHeld("host-a pid 1 (aaaaaa)", "2026-12-07T12:00:00Z")
    assert standby_reason(held) == (
        "standby: lease held by host-a pid 1 (aaaaaa) until 2026-12-07T12:00:00Z"
    )


class Flaky:
    """Held twice, unreadable once, then ours."""

    def __init__(self) -> None:
        self.answers: list[BaseException | None] = [
            LeaseHeld("a", "t1"),
            VaultError("D1 unreachable"),
            LeaseHeld("b", "t2"),
            None,
        ]

    def take(self) -> None:
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer


def test_a_standby_keeps_trying_through_holders_and_errors() -> None:
    heard: list[Held] = []
    claim = Flaky()
    assert wait_to_take(claim, threading.Event(), heard.append, poll=0.01)  # type: ignore[arg-type]
    assert [h.holder for h in heard] == ["a", "b"]
    assert claim.answers == []


def test_a_stopped_standby_stops_trying() -> None:
    stop = threading.Event()
    stop.set()
    assert not wait_to_take(Flaky(), stop, lambda _: None, poll=0.01)  # type: ignore[arg-type]
