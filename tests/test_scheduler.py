"""Background jobs: error retries on the 5 m / 15 m / 1 h ladder, live interval changes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from support import FixedClock, wait_for

from exporter.cloudflare.client import CloudflareClient
from exporter.core.model import AutoSync, Status
from exporter.demo.simulator import CloudflareSimulator, Faults
from exporter.runtime.scheduler import CheckScheduler
from exporter.service import Services, assemble
from exporter.service.checker import Checker
from exporter.service.cycle import retry_delay
from exporter.service.decisions import Decisions
from exporter.vault import SqliteStore
from exporter.vault.decisions import audit_rows


def test_the_retry_ladder() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 7)] == [
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(hours=1),
        timedelta(hours=1),
    ]


def test_an_audience_in_error_is_retried_when_due_and_backs_off(
    services: Services, checker: Checker, clock: FixedClock, simulator: CloudflareSimulator
) -> None:
    services.cycle.check_all("schedule")
    scheduler = CheckScheduler(services.cycle, services.snapshots)
    before = simulator.request_count
    clock.advance(minutes=4)
    scheduler.retry_errors()
    assert simulator.request_count == before  # not yet due
    clock.advance(minutes=1)
    scheduler.retry_errors()
    assert simulator.request_count == before + 1  # one GET for sales-team's group
    assert checker.snapshots.current.checks["sales-team"].memory.consecutive_errors == 2
    clock.advance(minutes=14)
    scheduler.retry_errors()
    assert simulator.request_count == before + 1  # the second retry waits 15 minutes
    clock.advance(minutes=1)
    scheduler.retry_errors()
    assert simulator.request_count == before + 2


def test_a_new_interval_reschedules_without_restart(services: Services) -> None:
    scheduler = CheckScheduler(services.cycle, services.snapshots)
    scheduler._schedule_checks()
    [job] = [j for j in scheduler._jobs.jobs if "check" in j.tags]
    assert job.interval == 900
    services.decisions.update_settings({"check_interval_seconds": 60})
    scheduler._follow_interval()
    [job] = [j for j in scheduler._jobs.jobs if "check" in j.tags]
    assert job.interval == 60 and job.latest == 63  # with a little jitter


def throttle_administrators(simulator: CloudflareSimulator, retry_after: int) -> None:
    """Issue 11 item 1: one group hidden from the listing that always answers 429."""
    admins = next(g for g in simulator.groups() if g["name"] == "administrators")
    simulator.faults = Faults(throttled_group=admins["id"], retry_after_seconds=retry_after)


def turn_auto_sync(checker: Checker, mode: AutoSync) -> None:
    Decisions(checker.vault, checker.snapshots).update_settings({"auto_sync": str(mode)})


def puts(simulator: CloudflareSimulator) -> int:
    return sum(method == "PUT" for method, _, _ in simulator.request_log)


def test_auto_sync_after_a_scheduled_check_waits_out_a_short_429_pause(
    services: Services, checker: Checker, clock: FixedClock, simulator: CloudflareSimulator
) -> None:
    turn_auto_sync(checker, AutoSync.FULL)
    throttle_administrators(simulator, retry_after=1)

    CheckScheduler(services.cycle, services.snapshots).full_cycle()

    checks = checker.snapshots.current.checks
    assert checks["administrators"].status is Status.ERROR
    assert checks["lms-instructors"].status is Status.SYNCED, checks["lms-instructors"]
    assert puts(simulator) == 1


class PauseClock:
    """The client's monotonic time: moves when the test says so, or when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_auto_sync_cut_short_by_a_long_pause_runs_again_as_soon_as_it_ends(
    sample_db: Path, clock: FixedClock, simulator: CloudflareSimulator
) -> None:
    pause_clock = PauseClock()
    client = CloudflareClient(
        base_url=simulator.base_url,
        account_id="demo-account",
        token="demo-token",
        timeout=5,  # waits at most 5 s: Cloudflare's 5-minute block is not waited out
        clock=pause_clock,
        sleep=pause_clock.sleep,
    )
    services = assemble(SqliteStore(sample_db).open(), client, clock=clock)
    checker = services.checker
    scheduler = CheckScheduler(services.cycle, services.snapshots, tick_seconds=0.05)
    turn_auto_sync(checker, AutoSync.FULL)
    throttle_administrators(simulator, retry_after=300)

    scheduler.full_cycle()

    lms = checker.snapshots.current.checks["lms-instructors"]
    assert lms.status is Status.DRIFT and puts(simulator) == 0  # refused at once, not waited
    scheduler.resume_auto_sync()
    assert puts(simulator) == 0  # still paused: nothing goes out

    scheduler.start()  # the scheduler's thread looks every tick whether the pause is over
    try:
        pause_clock.now += 300
        wait_for(
            lambda: checker.snapshots.current.checks["lms-instructors"].status is Status.SYNCED,
            timeout=10,
            what="the auto-sync to run again once the pause ended",
        )
    finally:
        scheduler.stop()
    assert puts(simulator) == 1
    with checker.vault.db.connect() as conn:
        [audit] = audit_rows(conn, "lms-instructors", limit=5)
    assert (audit["trigger"], audit["result"]) == ("auto", "synced")
    scheduler.resume_auto_sync()
    assert puts(simulator) == 1  # once: nothing is left to resume
