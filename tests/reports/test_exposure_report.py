"""The digest's exposure is the exporter's counter: over any period, an audience's
extra-member-hours are the increase of vault_drift_audience_extra_member_seconds_total."""

from __future__ import annotations

from datetime import timedelta

from support import T0, FixedClock, make_client

from exporter.core.exposure import member_seconds
from exporter.demo.simulator import CloudflareSimulator
from exporter.service import Services
from reports.history import Period, load_history
from reports.measures import extra_intervals, extra_member_hours


def counter(services: Services) -> float:
    return member_seconds(services.snapshots.current.checks["lms-instructors"].memory).extra


def digest_seconds(services: Services, start: timedelta, end: timedelta) -> float:
    period = Period("test", T0 + start, T0 + end)
    history = load_history(services.vault, period)
    intervals = extra_intervals(history.revocations, history.members, history.state, period)
    return extra_member_hours(intervals, period).get("lms-instructors", 0.0) * 3600


def test_digest_exposure_is_the_counters_increase(
    services: Services, simulator: CloudflareSimulator, clock: FixedClock
) -> None:
    services.checker.check_all()  # olduser@example.com is extra from T0
    clock.advance(minutes=10)
    services.checker.check_all()
    at_10 = counter(services)
    assert digest_seconds(services, timedelta(hours=-1), timedelta(minutes=10)) == at_10 == 600
    clock.advance(minutes=15)
    gid = next(g for g in simulator.groups() if g["name"] == "lms-instructors")["id"]
    client = make_client(simulator)
    group = client.get_group(gid)
    kept = [r for r in group.include if r.get("email", {}).get("email") != "olduser@example.com"]
    client.replace_group(type(group)(group.id, group.name, kept))
    services.checker.check_all()  # found gone at T0+25m: a revocation row of 25 minutes
    at_25 = counter(services)
    assert at_25 == 1500
    assert digest_seconds(services, timedelta(minutes=10), timedelta(minutes=25)) == at_25 - at_10
    assert digest_seconds(services, timedelta(hours=-1), timedelta(hours=1)) == at_25
