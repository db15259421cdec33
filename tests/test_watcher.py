"""Change-driven checks on a real Vault file: what the watcher re-checks, and when it waits."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support import FixedClock, wait_for

from exporter.core.snapshot import Snapshot
from exporter.demo.sample import add_member
from exporter.runtime.watcher import MembershipWatcher
from exporter.service import Services
from exporter.service.checker import Checker
from exporter.service.cycle import CycleService
from exporter.vault.store import VaultStore


class Recorded:
    """A cycle that records the checks asked of it, then runs them on the real cycle; the
    watcher is given it in place of the real one."""

    def __init__(self, cycle: CycleService) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.lock = cycle.lock
        self._cycle = cycle
        self._calls_lock = threading.Lock()

    def check_all(self, trigger: str = "schedule", timeout: float | None = None) -> Snapshot:
        with self._calls_lock:
            self.calls.append(("all", trigger))
        return self._cycle.check_all(trigger, timeout)

    def check_audiences(
        self, names: list[str], trigger: str = "api", timeout: float | None = None
    ) -> Snapshot:
        with self._calls_lock:
            self.calls.append(("audiences", trigger, *names))
        return self._cycle.check_audiences(names, trigger, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cycle, name)  # what the watcher asks besides checks


class SlowVault:
    """The Vault, whose every membership read "takes" ``seconds`` on ``clock``."""

    def __init__(self, vault: VaultStore, clock: Monotonic, seconds: float) -> None:
        self._vault, self._clock, self._seconds = vault, clock, seconds

    def expected_members(self, names: list[str]) -> Any:
        self._clock.now += self._seconds
        return self._vault.expected_members(names)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vault, name)


class Monotonic:
    """Monotonic time that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def recorded(services: Services) -> Recorded:
    return Recorded(services.cycle)


def watching(
    services: Services, cycle: Any = None, vault: Any = None, **options: Any
) -> Iterator[MembershipWatcher]:
    options = {"poll_seconds": 0.02, "debounce_seconds": 0, "check_timeout": 0.2, **options}
    watcher = MembershipWatcher(vault or services.vault, cycle or services.cycle, **options)
    watcher.start()
    try:
        wait_for(lambda: watcher.reads >= 1, 10, "the watcher's first reading")
        yield watcher
    finally:
        watcher.stop()


@pytest.fixture
def watcher(services: Services, recorded: Recorded) -> Iterator[MembershipWatcher]:
    yield from watching(services, cycle=recorded)


def write(db: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(sql, params)


def test_a_membership_change_re_checks_only_that_audience(
    watcher: MembershipWatcher, recorded: Recorded, sample_db: Path, clock: FixedClock
) -> None:
    with sqlite3.connect(sample_db) as conn:
        add_member(conn, "newcomer@example.com", "g-1", clock() - timedelta(minutes=1))

    wait_for(lambda: recorded.calls, 10, "a change-driven check")
    assert recorded.calls == [("audiences", "change", "administrators")]


def test_a_new_audience_row_re_checks_everything(
    watcher: MembershipWatcher, recorded: Recorded, sample_db: Path
) -> None:
    write(
        sample_db,
        "INSERT INTO sys_infra_state (audience, namespace, provider) VALUES (?, 'x', 'cf')",
        "brand-new",
    )

    wait_for(lambda: recorded.calls, 10, "a change-driven check")
    assert recorded.calls == [("all", "change")]


def test_commits_that_change_no_membership_check_nothing(
    watcher: MembershipWatcher, recorded: Recorded, services: Services, sample_db: Path
) -> None:
    recorded.check_all("schedule")  # the exporter's own writes move data_version too
    write(sample_db, "UPDATE iam_organization SET name = name || '!'")
    write(sample_db, "UPDATE iam_user SET created_at = created_at")
    reads = watcher.reads

    wait_for(lambda: watcher.reads > reads, 10, "the watcher to read the commits")
    assert recorded.calls == [("all", "schedule")]


def test_a_change_that_meets_a_running_check_is_checked_once_it_ends(
    watcher: MembershipWatcher,
    recorded: Recorded,
    services: Services,
    checker: Checker,
    sample_db: Path,
) -> None:
    with services.cycle.lock.hold():  # a check or sync in progress
        write(sample_db, "UPDATE iam_user SET status = 'suspended' WHERE email = 'ops@example.com'")
        wait_for(lambda: len(recorded.calls) >= 2, 10, "the watcher to meet Busy twice")
    wait_for(lambda: checker.snapshots.current.checks, 10, "the deferred check to run")

    assert set(recorded.calls) == {("audiences", "change", "administrators")}
    assert checker.snapshots.current.checks["administrators"].expected_count == 1


def test_reads_stay_a_bounded_share_of_a_core(services: Services, sample_db: Path) -> None:
    clock = Monotonic()
    slow = SlowVault(services.vault, clock, 2.0)  # 2 s a read: quiet for 6 s (25 % of a core)
    watcher_ = watching(services, vault=slow, read_share=0.25, clock=clock)
    watcher = next(watcher_)
    clock.now += 6.0  # past the first read's quiet period
    try:
        write(sample_db, "UPDATE iam_organization SET name = name || '!'")
        wait_for(lambda: watcher.reads == 2, 10, "the read of the first commit")
        write(sample_db, "UPDATE iam_organization SET name = name || '?'")
        time.sleep(0.3)  # 15 polls: all inside the quiet period
        assert watcher.reads == 2
        clock.now += 6.0
        wait_for(lambda: watcher.reads == 3, 10, "the read once the quiet period is over")
    finally:
        watcher_.close()


def test_a_share_outside_zero_to_one_is_refused(services: Services) -> None:
    with pytest.raises(ValueError, match="read_share"):
        MembershipWatcher(services.vault, services.cycle, read_share=0)
