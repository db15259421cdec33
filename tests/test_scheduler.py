"""Background jobs: error retries on the 5 m / 15 m / 1 h ladder, live interval changes."""

from __future__ import annotations

from datetime import timedelta

from support import FixedClock

from exporter.demo.simulator import CloudflareSimulator
from exporter.scheduler import CheckScheduler, retry_delay
from exporter.service import Services
from exporter.service.checker import Checker
from exporter.service.syncer import Syncer


def test_the_retry_ladder() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 7)] == [
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(hours=1),
        timedelta(hours=1),
    ]


def test_an_audience_in_error_is_retried_when_due_and_backs_off(
    checker: Checker, syncer: Syncer, clock: FixedClock, simulator: CloudflareSimulator
) -> None:
    checker.check_all()
    scheduler = CheckScheduler(checker, syncer, clock)
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


def test_a_new_interval_reschedules_without_restart(
    services: Services, checker: Checker, syncer: Syncer, clock: FixedClock
) -> None:
    scheduler = CheckScheduler(checker, syncer, clock)
    scheduler._schedule_checks()
    [job] = [j for j in scheduler._jobs.jobs if "check" in j.tags]
    assert job.interval == 900
    services.operator.update_settings({"check_interval_seconds": 60})
    scheduler._follow_interval()
    [job] = [j for j in scheduler._jobs.jobs if "check" in j.tags]
    assert job.interval == 60 and job.latest == 63  # with a little jitter
