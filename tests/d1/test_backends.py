"""The same scenarios on the three Vault backends: a SQLite file, the simulated D1, workerd's D1.

Statuses, a sync with its guards, a failed write, 429 and 7500 faults: what the exporter
persists and shows must not depend on where the Vault lives.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from support.d1_world import World

from exporter.cloudflare.d1 import D1Error
from exporter.core.model import Status
from exporter.service.syncer import SyncRequest
from exporter.vault import VaultError
from exporter.vault.d1 import D1Store

SAMPLE_COUNTS = {"pending": 1, "synced": 2, "drift": 1, "error": 1}


def statuses(world: World) -> dict[str, str]:
    return dict(world.sql("SELECT audience, sync_status FROM sys_infra_state"))  # type: ignore[arg-type]


def test_statuses_and_drift_onsets_are_persisted(backend: World) -> None:
    services = backend.services()
    snapshot = services.checker.check_all("cli")
    assert snapshot.counts() == SAMPLE_COUNTS
    assert statuses(backend) == {
        "administrators": "synced",
        "developers": "synced",
        "lms-instructors": "drift",
        "lms-viewer": "pending",
        "sales-team": "error",
    }
    check = snapshot.checks["lms-instructors"]
    assert {m.email for m in check.missing} == {"alice@example.com", "bob@example.com"}
    assert {m.email for m in check.extra} == {"olduser@example.com"}
    # A second check, later, keeps the onset and the first-seen times: one open episode.
    backend.clock.advance(minutes=10)
    again = backend.services().checker.check_all("cli").checks["lms-instructors"]
    assert again.drift_since == check.drift_since
    episodes = backend.sql(
        "SELECT count(*) FROM sys_infra_drift_episode WHERE audience = 'lms-instructors'"
        " AND closed_at IS NULL"
    )
    assert episodes == [(1,)]
    members = backend.sql("SELECT count(*) FROM sys_infra_drift_member")
    assert members == [(3,)]
    cycles = backend.sql("SELECT count(*), sum(drift) FROM sys_infra_drift_cycle")
    assert cycles == [(2, 2)]


def test_text_stays_text_and_numbers_stay_numbers(backend: World) -> None:
    """D1 stores bound numbers as REAL: nothing the exporter writes may come back altered."""
    services = backend.services()
    services.checker.check_all("cli")
    services.decisions.update_settings({"check_interval_seconds": 120})
    rows = backend.sql(
        "SELECT typeof(expected_count), typeof(consecutive_errors), typeof(drift_since)"
        " FROM sys_infra_drift_state WHERE audience = 'lms-instructors'"
    )
    assert rows == [("integer", "integer", "text")]
    assert backend.store().settings().check_interval_seconds == 120
    assert backend.sql(
        "SELECT value FROM sys_infra_drift_settings WHERE key = 'check_interval_seconds'"
    ) == [("120",)]


def test_a_sync_is_audited_and_its_guards_hold(backend: World) -> None:
    services = backend.services()
    services.checker.check_all("cli")
    [outcome] = services.syncer.sync(SyncRequest(["lms-instructors"], actor="test"))
    assert (str(outcome.result), outcome.added, outcome.removed) == (
        "synced",
        ("alice@example.com", "bob@example.com"),
        ("olduser@example.com",),
    )
    assert services.snapshots.current.checks["lms-instructors"].status is Status.SYNCED
    # Vault loses every member of developers: the empty-source guard blocks the sync.
    backend.sql("UPDATE iam_user SET status = 'suspended' WHERE email LIKE 'dev%'")
    services.checker.check_all("cli")
    [blocked] = services.syncer.sync(SyncRequest(["developers"], actor="test"))
    assert (str(blocked.result), blocked.blocked_reason) == ("blocked", "empty_source")
    audit = backend.store().audit(limit=10)
    assert [(row["audience"], row["result"]) for row in audit] == [
        ("developers", "blocked"),
        ("lms-instructors", "synced"),
    ]
    assert audit[1]["added"] == ["alice@example.com", "bob@example.com"]
    episode = backend.sql(
        "SELECT close_reason, closed_by FROM sys_infra_drift_episode"
        " WHERE audience = 'lms-instructors'"
    )
    assert episode == [("sync", "test")]


def test_a_failed_write_leaves_nothing_and_the_next_cycle_writes_once(backend: World) -> None:
    services = backend.services()
    undo = backend.fail_next_write()
    with pytest.raises(VaultError):
        services.checker.check_all("schedule")
    undo()
    # Nothing of the failed cycle: no status, no episode, no member, no cycle row; and the
    # snapshot (/metrics) does not claim it either.
    assert set(statuses(backend).values()) == {"pending"}
    assert backend.sql("SELECT count(*) FROM sys_infra_drift_episode") == [(0,)]
    assert backend.sql("SELECT count(*) FROM sys_infra_drift_member") == [(0,)]
    assert backend.sql("SELECT count(*) FROM sys_infra_drift_cycle") == [(0,)]
    assert services.snapshots.current.checks == {}
    snapshot = services.checker.check_all("schedule")
    assert snapshot.counts() == SAMPLE_COUNTS
    assert backend.sql("SELECT count(*) FROM sys_infra_drift_episode") == [(1,)]
    assert backend.sql("SELECT count(*) FROM sys_infra_drift_cycle") == [(1,)]


def test_a_notification_checks_only_the_audiences_named(backend: World) -> None:
    services = backend.services()
    services.checker.check_all("cli")
    backend.sql(
        "INSERT INTO iam_user (id, email, status) VALUES ('u-new', 'new@example.com', 'active')"
    )
    backend.sql(
        "INSERT INTO iam_user_group (user_id, group_id, created_at)"
        " VALUES ('u-new', 'g-2', '2026-11-25T09:00:00Z')"
    )
    before = backend.access_requests()
    snapshot = services.cycle.check_audiences(["developers"], "change")
    assert backend.access_requests() - before == 1  # one direct GET, no listing
    assert [m.email for m in snapshot.checks["developers"].missing] == ["new@example.com"]


@pytest.mark.parametrize(
    "status, message", [(429, "D1 DB is overloaded"), (400, "D1_ERROR: internal error")]
)
def test_d1_faults_are_waited_out_or_retried(d1_backend: World, status: int, message: str) -> None:
    backend = d1_backend
    services = backend.services()
    backend.d1_fault(status, 7500, message, times=1)
    snapshot = services.checker.check_all("cli")
    assert snapshot.counts() == SAMPLE_COUNTS
    stats = services.cloudflare.stats.snapshot()
    if status == 429:
        # One budget, one gate: D1's 429 paused the Access calls too, and was counted.
        assert stats.rate_limited_total == 1
        assert stats.d1.requests[("POST", "4xx")] == 1
    else:
        assert stats.rate_limited_total == 0
    assert stats.d1.rows_read > 0 and stats.d1.rows_written > 0


def test_a_sql_error_is_not_retried_and_leaves_the_audiences_in_error(d1_backend: World) -> None:
    backend = d1_backend
    services = backend.services()
    services.checker.check_all("cli")
    backend.d1_fault(400, 7500, "D1_ERROR: no such column: bogus: SQLITE_ERROR", times=1)
    snapshot = services.checker.check_all("cli")
    # The first read of the cycle failed: Vault is down for this cycle, nothing is guessed.
    assert snapshot.vault_up is False
    assert {c.status for c in snapshot.checks.values()} == {Status.ERROR}


def test_members_come_in_pages_under_the_byte_budget(d1_backend: World) -> None:
    services = d1_backend.services(page_bytes=300)
    store = services.vault
    assert isinstance(store, D1Store)
    sizes: list[tuple[int, int]] = []  # (audiences with members, bytes) per answer
    real = store.pager.answer

    def measured(*args: Any, **kwargs: Any) -> Any:
        answer = real(*args, **kwargs)
        sizes.append((len(answer.got), sum(len(e) + len(a) for e, a in answer.got.values())))
        return answer

    # Every page passes here, the first one too (it comes with the check's other reads).
    store.pager.answer = measured  # type: ignore[method-assign]
    first = services.checker.check_all("cli")
    second = services.checker.check_all("cli")
    assert first.counts() == second.counts() == SAMPLE_COUNTS
    total = store.pager.member_bytes
    # Over the budget only when one audience alone is bigger than it.
    assert all(size <= 300 or count == 1 for count, size in sizes)
    assert any(count > 1 for count, _ in sizes)
    pages_of_second = len(sizes) // 2
    assert pages_of_second <= math.ceil(total / 300) + 1


def test_an_audience_whose_page_did_not_arrive_is_an_error(d1_backend: World) -> None:
    services = d1_backend.services(page_bytes=300)
    store = services.vault
    assert isinstance(store, D1Store)
    arrived: set[str] = set()
    real = store.pager.answer

    def first_only(*args: Any, **kwargs: Any) -> Any:
        answer = real(*args, **kwargs)
        arrived.update(answer.got)
        return answer

    def flaky(page: list[str], with_broken: bool) -> Any:
        # The first page comes with the check's other reads; the second one is lost.
        raise D1Error("D1_ERROR: storage operation exceeded timeout", transient=True)

    store.pager.answer = first_only  # type: ignore[method-assign]
    store.pager.read_page = flaky  # type: ignore[method-assign]
    snapshot = services.checker.check_all("cli")
    assert arrived and len(arrived) < len(snapshot.checks)
    for name, check in snapshot.checks.items():
        if name in arrived:
            assert "did not arrive" not in (check.error_message or "")
        else:
            assert check.status is Status.ERROR, name
            assert "did not arrive" in (check.error_message or "")
    assert snapshot.checks["lms-instructors"].status in (Status.DRIFT, Status.ERROR)
    assert not any(
        c.status in (Status.SYNCED, Status.DRIFT)
        for n, c in snapshot.checks.items()
        if n not in arrived
    )
