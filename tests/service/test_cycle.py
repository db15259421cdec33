"""The cycle service: every trigger's check is followed by auto-sync and the followers."""

from __future__ import annotations

import logging

import pytest
from support import FixedClock

from exporter.core.model import Status, SyncResultKind
from exporter.demo.simulator import CloudflareSimulator, Faults
from exporter.service import Services
from exporter.service.cycle import CycleDone
from exporter.vault.store import VaultError


class Seen:
    """A follower that remembers what each cycle did."""

    def __init__(self) -> None:
        self.done: list[CycleDone] = []

    def after_cycle(self, done: CycleDone) -> None:
        self.done.append(done)


def group_id(simulator: CloudflareSimulator, name: str) -> str:
    return next(g["id"] for g in simulator.groups() if g["name"] == name)


def test_an_audience_that_heals_on_the_retry_path_and_drifts_is_auto_synced(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    """Field report 2, item 3: the retry used to call the checker alone, so an audience that
    recovered on a retry and drifted waited a whole interval for its auto-sync."""
    services.decisions.update_settings({"auto_sync": "full"})
    developers = group_id(simulator, "developers")
    simulator.faults = Faults(throttled_group=developers, retry_after_seconds=1)
    services.cycle.check_all("schedule")
    assert services.snapshots.current.checks["developers"].status is Status.ERROR
    simulator.faults = Faults()
    include = simulator.group(developers)["include"]
    simulator.set_include(developers, include[:-1])  # a member goes missing meanwhile
    seen = Seen()
    services.cycle.followers.append(seen)

    clock.advance(minutes=5)
    services.cycle.retry_errors()

    check = services.snapshots.current.checks["developers"]
    assert check.status is Status.SYNCED, check
    [done] = seen.done
    assert (done.trigger, done.scope) == ("retry", "partial")
    assert "developers" in (done.audiences or ())
    assert [(o.audience, o.result) for o in done.synced] == [("developers", SyncResultKind.SYNCED)]


def test_followers_run_after_every_trigger_and_after_syncs(services: Services) -> None:
    from exporter.service.syncer import SyncRequest

    seen = Seen()
    services.cycle.followers.append(seen)
    services.cycle.check_all("schedule")
    services.cycle.check_audiences(["developers"], "change")
    services.cycle.sync(SyncRequest(["lms-instructors"], trigger="api", actor="test"))
    services.cycle.sync(SyncRequest(["lms-instructors"], dry_run=True))  # changes nothing
    assert [(d.trigger, d.scope) for d in seen.done] == [
        ("schedule", "full"),
        ("change", "partial"),
        ("api", "sync"),
    ]
    assert [o.audience for o in seen.done[-1].synced] == ["lms-instructors"]


def test_a_failing_follower_never_breaks_the_check(services: Services) -> None:
    class Broken:
        def after_cycle(self, done: CycleDone) -> None:
            raise RuntimeError("boom")

    services.cycle.followers.append(Broken())
    snapshot = services.cycle.check_all("schedule")
    assert snapshot.checks["administrators"].status is Status.SYNCED


def test_a_follower_meeting_a_vault_error_logs_one_line_without_a_traceback(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """While the Vault is unreadable (a D1 paused by a 429), every cycle's followers meet the
    store's error: one warning each, not a traceback per cycle."""

    class NeedsTheVault:
        def after_cycle(self, done: CycleDone) -> None:
            raise VaultError("D1 answered 429: calls paused for another 240s")

    services.cycle.followers.append(NeedsTheVault())
    with caplog.at_level(logging.WARNING, logger="vault_drift.cycle"):
        services.cycle.check_all("schedule")
    [record] = [r for r in caplog.records if "NeedsTheVault" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert "calls paused for another 240s" in record.getMessage()
