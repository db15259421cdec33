"""The change feed, end to end: a real Vault file, the simulated Cloudflare (whose audit log
records every edit, shows entries late when told, and pages), and the feed polled by hand."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from support import T0, FixedClock, make_client

from exporter.core.settings import Settings
from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.demo.simulator_logpush import logpush_record
from exporter.service import Services, assemble
from exporter.service.feed import ChangeFeed
from exporter.vault import SqliteStore, VaultError

JANE = "jane@corp.example"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def simulator(clock: FixedClock) -> Iterator[CloudflareSimulator]:
    sim = CloudflareSimulator(per_page_cap=50, wall_clock=clock).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def sample_db(tmp_path: Path, simulator: CloudflareSimulator, clock: FixedClock) -> Path:
    path = tmp_path / "vault.db"
    build_sample(path, simulator, clock())
    return path


def wired(sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock) -> Services:
    services = assemble(
        SqliteStore(sample_db).open(), make_client(simulator), clock=clock, attribution=True
    )
    services.cycle.check_all("schedule")  # serve's first check: the feed knows the groups
    return services


@pytest.fixture
def services(sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock) -> Services:
    return wired(sample_db, simulator, clock)


def feed_of(services: Services) -> ChangeFeed:
    assert services.feed is not None
    return services.feed


def group(simulator: CloudflareSimulator, name: str) -> dict:  # type: ignore[type-arg]
    return next(g for g in simulator.groups() if g["name"] == name)


def rule(email: str) -> dict[str, dict[str, str]]:
    return {"email": {"email": email}}


def add_member(simulator: CloudflareSimulator, name: str, email: str) -> str:
    """A manual edit in the dashboard: ``email`` added to the audience's group."""
    target = group(simulator, name)
    simulator.set_include(target["id"], [*target["include"], rule(email)], by=JANE)
    return str(target["id"])


def requests_since(simulator: CloudflareSimulator, mark: int) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in simulator.request_log[mark:]]


def listings(requests: list[tuple[str, str]]) -> int:
    return sum(path.endswith("/access/groups") for _, path in requests)


def test_an_edit_is_checked_with_one_get_and_no_listing(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    feed = feed_of(services)
    clock.advance(minutes=1)
    feed.poll()  # a quiet poll first: the cursor is set
    clock.advance(seconds=5)
    group_id = add_member(simulator, "administrators", "friend@example.org")
    clock.advance(seconds=25)
    mark = len(simulator.request_log)

    assert feed.poll() == ["administrators"]

    requests = requests_since(simulator, mark)
    assert listings(requests) == 0
    assert sum(path.endswith(f"/access/groups/{group_id}") for _, path in requests) == 1
    assert sum(path.endswith("/audit_logs") for _, path in requests) == 1
    check = services.snapshots.current.checks["administrators"]
    assert [m.email for m in check.extra] == ["friend@example.org"]
    # attribution read the feed's entry: no listing of its own, and it names Jane
    changed_by = check.extra[0].attribution.changed_by  # type: ignore[union-attr]
    assert changed_by is not None and changed_by.actor == JANE
    stats = feed.stats()
    assert (stats.up, stats.checks, stats.entries["poll"]) == (True, 1, 1)


def test_entries_for_other_groups_are_ignored(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    feed = feed_of(services)
    stray = simulator.add_group("not-an-audience", [rule("a@example.org")])
    simulator.set_include(stray, [rule("b@example.org")], by=JANE)
    clock.advance(seconds=30)
    mark = len(simulator.request_log)

    assert feed.poll() == []
    assert requests_since(simulator, mark) == [
        ("GET", "/client/v4/accounts/demo-account/audit_logs")
    ]
    assert feed.stats().checks == 0


def test_a_late_entry_is_caught_by_the_overlap(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    """An entry written into the log 90 s after the edit: a reader going on from one second
    past the last entry it saw would never read it; the overlap (120 s) does."""
    feed = feed_of(services)
    feed.poll()
    simulator.audit.delay = timedelta(seconds=90)
    clock.advance(seconds=1)
    add_member(simulator, "administrators", "late@example.org")
    simulator.audit.delay = timedelta(0)
    clock.advance(seconds=2)
    add_member(simulator, "developers", "prompt@example.org")  # newer, shown at once
    clock.advance(seconds=30)
    assert feed.poll() == ["developers"]
    clock.advance(seconds=30)
    assert feed.poll() == []
    clock.advance(seconds=30)  # 92 s after the edit: its entry shows now, 90 s back
    assert feed.poll() == ["administrators"]
    assert "late@example.org" in [
        m.email for m in services.snapshots.current.checks["administrators"].extra
    ]


def test_duplicates_are_acted_on_once_and_same_second_entries_on_pages(
    sample_db: Path, clock: FixedClock
) -> None:
    """Entries of one millisecond, served one per page: each is taken once, across polls."""
    simulator = CloudflareSimulator(per_page_cap=50, audit_per_page_cap=1, wall_clock=clock)
    with simulator.start():
        build_sample(sample_db.with_name("paged.db"), simulator, clock())
        services = wired(sample_db.with_name("paged.db"), simulator, clock)
        feed = feed_of(services)
        add_member(simulator, "administrators", "one@example.org")
        add_member(simulator, "developers", "two@example.org")  # the same instant
        clock.advance(seconds=30)
        assert feed.poll() == ["administrators", "developers"]
        clock.advance(seconds=30)
        assert feed.poll() == []  # read again within the overlap, not acted on again
        assert feed.stats().checks == 2
        assert feed.stats().entries["poll"] == 2


def test_a_restart_does_not_act_twice(
    services: Services, sample_db: Path, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    add_member(simulator, "administrators", "friend@example.org")
    clock.advance(seconds=30)
    assert feed_of(services).poll() == ["administrators"]

    clock.advance(seconds=30)
    again = wired(sample_db, simulator, clock)
    assert feed_of(again).poll() == []
    assert feed_of(again).stats().checks == 0


def test_a_refused_audit_log_turns_the_feed_off_and_the_full_listing_falls_back(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    feed = feed_of(services)
    services.decisions.update_settings(
        {"check_interval_seconds": 60, "full_check_interval_seconds": 900}
    )
    assert feed.full_interval_seconds() == 900
    simulator.audit_denied.add("demo-token")
    assert feed.poll() == []
    assert feed.refused and feed.stats().up is False
    assert feed.full_interval_seconds() == 60
    clock.advance(seconds=30)
    mark = len(simulator.request_log)
    assert feed.poll() == []  # off until restart: no request
    assert requests_since(simulator, mark) == []


def test_off_polls_nothing_and_uses_the_check_interval(
    services: Services, simulator: CloudflareSimulator
) -> None:
    feed = feed_of(services)
    services.decisions.update_settings({"cloudflare_feed": "off", "check_interval_seconds": 120})
    mark = len(simulator.request_log)
    assert feed.poll() == []
    assert requests_since(simulator, mark) == []
    assert feed.full_interval_seconds() == 120
    assert feed.stats().up is None  # no vault_drift_feed_up series while off


def test_repeated_errors_make_the_feed_down(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    feed = feed_of(services)
    services.decisions.update_settings({"check_interval_seconds": 60})
    simulator.audit_failing = True
    for polls in range(1, 4):
        clock.advance(seconds=30)
        feed.poll()
        assert feed.healthy() is (polls < 3)
    assert feed.full_interval_seconds() == 60
    simulator.audit_failing = False
    clock.advance(seconds=30)
    feed.poll()
    assert feed.healthy() and feed.full_interval_seconds() == Settings().full_check_interval_seconds


def test_a_pushed_entry_is_taken_once_with_the_polled_ones(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    feed = feed_of(services)
    add_member(simulator, "administrators", "pushed@example.org")
    entry = simulator.audit.entries()[-1]
    about, checked = feed.take_pushed([logpush_entry(entry)])
    assert (about, checked) == (1, ["administrators"])
    clock.advance(seconds=30)
    assert feed.poll() == []  # the poll reads it again: already taken
    stats = feed.stats()
    assert (stats.entries["logpush"], stats.entries["poll"], stats.checks) == (1, 0, 1)


def logpush_entry(entry: dict) -> dict:  # type: ignore[type-arg]
    """The entry as a Logpush delivery carries it, read back as the endpoint reads it."""
    from exporter.cloudflare.logpush import parse_delivery

    body = gzip.compress(json.dumps(logpush_record(entry)).encode() + b"\n")
    return parse_delivery(body).entries[0]


def test_an_edit_is_checked_even_when_its_entry_cannot_be_kept(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    """Keeping the entry for attribution is a Vault write; when it fails, the edit is still
    checked (it was taken: no later poll would act on it)."""
    feed = feed_of(services)
    clock.advance(minutes=1)
    feed.poll()
    keep = services.vault.record_group_changes

    def refused(*args: object) -> None:
        raise VaultError("Vault write failed: disk I/O error")

    services.vault.record_group_changes = refused  # type: ignore[method-assign]
    add_member(simulator, "administrators", "friend@example.org")
    clock.advance(seconds=30)
    assert feed.poll() == ["administrators"]
    services.vault.record_group_changes = keep  # type: ignore[method-assign]
    check = services.snapshots.current.checks["administrators"]
    assert [m.email for m in check.extra] == ["friend@example.org"]


def test_a_check_the_vault_refused_is_tried_again_by_the_next_poll(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    feed = feed_of(services)
    clock.advance(minutes=1)
    feed.poll()
    reads = services.vault.check_reads

    def unreadable(*args: object) -> object:
        raise VaultError("Vault unreadable: database is locked")

    services.vault.check_reads = unreadable  # type: ignore[method-assign,assignment]
    add_member(simulator, "administrators", "friend@example.org")
    clock.advance(seconds=30)
    assert feed.poll() == []
    services.vault.check_reads = reads  # type: ignore[method-assign]
    clock.advance(seconds=30)
    assert feed.poll() == ["administrators"]
    check = services.snapshots.current.checks["administrators"]
    assert [m.email for m in check.extra] == ["friend@example.org"]
