"""Exposure (docs/design.md, "Exposure"): each side of a drift judged apart, member-seconds that only grow,
one revocation per extra member that goes, the settings that drive them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.core.drift import evaluate
from exporter.core.exposure import (
    LatencyTotals,
    bucket_of,
    member_seconds,
)
from exporter.core.levels import LEVEL_RANK, verdict
from exporter.core.model import (
    Actual,
    AlertLevel,
    Audience,
    AutoSync,
    DriftMemory,
    Expected,
    Group,
    Status,
)
from exporter.core.plan import EMPTY_SOURCE, MASS_REMOVAL, email_rule, plan_sync
from exporter.core.settings import Settings, SettingsError, apply_settings

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
AUD = Audience("lms-viewer", "lms", "cloudflare_access", "g1")
DRIFT = Status.DRIFT


def group(*members: str) -> Group:
    return Group("g1", "lms-viewer", [email_rule(m) for m in members])


def expected(*members: str) -> Expected:
    return Expected(dict.fromkeys(members, "2026-11-25T08:00:00Z"))


def rank(level: AlertLevel) -> int:
    return LEVEL_RANK[level]


# -- levels --------------------------------------------------------------------------------


def test_extra_members_have_their_own_stricter_tiers() -> None:
    levels = Settings().levels

    def judged(missing: float | None, extra: float | None) -> tuple[str, str | None]:
        since = [None if a is None else NOW - timedelta(minutes=a) for a in (missing, extra)]
        found = verdict(DRIFT, since[0], since[1], NOW, levels)
        return str(found.level), found.reason

    assert judged(None, 14) == ("info", "extra")
    assert judged(None, 16) == ("warning", "extra")
    assert judged(None, 59) == ("warning", "extra")
    assert judged(None, 61) == ("critical", "extra")
    assert judged(59, None) == ("info", "missing")
    assert judged(61, None) == ("warning", "missing")
    assert judged(25 * 60, None) == ("critical", "missing")
    # The higher side sets the level and is named; on a tie the exposure is named.
    assert judged(25 * 60, 16) == ("critical", "missing")
    assert judged(2 * 60, 61) == ("critical", "extra")
    assert judged(90, 20) == ("warning", "extra")
    assert verdict(Status.SYNCED, None, None, NOW, levels).reason is None
    assert verdict(Status.ERROR, NOW, NOW, NOW, levels).level is AlertLevel.NONE


thresholds = st.integers(60, 10 * 86400)


@st.composite
def settings(draw: st.DrawFn) -> Settings:
    """Any settings the API accepts: each warning below its critical."""
    warning, extra_warning = draw(thresholds), draw(thresholds)
    critical = draw(st.integers(warning + 1, 20 * 86400))
    extra_critical = draw(st.integers(extra_warning + 1, 20 * 86400))
    changes = {
        "warning_threshold_seconds": warning,
        "critical_threshold_seconds": critical,
        "extra_warning_threshold_seconds": extra_warning,
        "extra_critical_threshold_seconds": extra_critical,
    }
    return apply_settings(Settings(critical_threshold_seconds=10**8), changes)


ages = st.one_of(st.none(), st.integers(0, 30 * 86400))
growth = st.integers(0, 30 * 86400)


def at_age(age: int | None) -> datetime | None:
    return None if age is None else NOW - timedelta(seconds=age)


@given(settings(), ages, ages, growth, growth)
def test_the_level_never_drops_when_either_side_grows_older(
    chosen: Settings, missing: int | None, extra: int | None, more_m: int, more_e: int
) -> None:
    levels = chosen.levels
    before = verdict(DRIFT, at_age(missing), at_age(extra), NOW, levels)
    older_missing = None if missing is None else missing + more_m
    older_extra = None if extra is None else extra + more_e
    for m, e in ((older_missing, extra), (missing, older_extra), (older_missing, older_extra)):
        after = verdict(DRIFT, at_age(m), at_age(e), NOW, levels)
        assert rank(after.level) >= rank(before.level)


@given(settings(), st.integers(0, 30 * 86400))
def test_an_extra_member_is_never_judged_lower_than_a_missing_one_of_the_same_age(
    chosen: Settings, age: int
) -> None:
    since = NOW - timedelta(seconds=age)
    as_extra = verdict(DRIFT, None, since, NOW, chosen.levels)
    as_missing = verdict(DRIFT, since, None, NOW, chosen.levels)
    assert rank(as_extra.level) >= rank(as_missing.level)


# -- onsets, member-seconds, revocations over a run of checks ------------------------------

people = st.sampled_from(["a@x.com", "b@x.com", "c@x.com", "d@x.com"])
sides = st.frozensets(people, max_size=4)
# One check: (minutes since the previous one, what Vault grants, what Cloudflare lets in, and
# whether the check failed to read the group).
steps = st.lists(st.tuples(st.integers(0, 120), sides, sides, st.booleans()), max_size=12)


@given(steps)
def test_member_seconds_only_grow_and_each_revocation_is_seen_once(
    run: list[tuple[int, frozenset[str], frozenset[str], bool]],
) -> None:
    memory, now = DriftMemory(), NOW
    previous = member_seconds(memory)
    extra_before: set[str] = set()
    for minutes, vault, cloudflare, failed in run:
        now += timedelta(minutes=minutes)
        actual = Actual(error="timeout") if failed else Actual(group(*cloudflare))
        check = evaluate(AUD, expected(*vault), actual, memory, now)
        totals = member_seconds(check.memory)
        assert totals.missing >= previous.missing and totals.extra >= previous.extra
        if failed:  # nothing is seen while the group cannot be read...
            assert check.revoked == ()
        else:  # ...and each extra member that went meanwhile is seen by the next good check
            extra_now = set(cloudflare - vault)
            assert {r.email for r in check.revoked} == extra_before - extra_now
            assert all(r.revoked_at == now and r.seconds >= 0 for r in check.revoked)
            extra_before = extra_now
        onsets = [s for s in (check.memory.missing_since, check.memory.extra_since) if s]
        if onsets:  # drift_since stays the start of the episode: the earlier onset, or before
            assert check.memory.drift_since is not None
            assert check.memory.drift_since <= min(onsets)
        memory, previous = check.memory, totals


def test_member_seconds_count_each_member_from_first_seen_to_gone() -> None:
    t1, t2, t3 = NOW, NOW + timedelta(minutes=10), NOW + timedelta(minutes=25)
    first = evaluate(
        AUD, expected("a@x.com"), Actual(group("a@x.com", "z@x.com")), DriftMemory(), t1
    )
    assert member_seconds(first.memory).extra == 0
    assert first.memory.extra_since == t1 and first.memory.missing_since is None
    # A failed read freezes the counters where the last good check left them.
    failed = evaluate(AUD, expected("a@x.com"), Actual(error="429"), first.memory, t2)
    assert member_seconds(failed.memory) == member_seconds(first.memory)
    second = evaluate(
        AUD, expected("a@x.com"), Actual(group("a@x.com", "z@x.com")), failed.memory, t2
    )
    assert member_seconds(second.memory).extra == 600
    third = evaluate(AUD, expected("a@x.com"), Actual(group("a@x.com")), second.memory, t3)
    assert third.status is Status.SYNCED
    assert member_seconds(third.memory).extra == 1500  # closed: kept after the drift is gone
    [revocation] = third.revoked
    assert (revocation.email, revocation.seconds, revocation.namespace) == ("z@x.com", 1500, "lms")
    # Vault granting the member again is a revocation of the exposure too.
    regrant = evaluate(
        AUD, expected("a@x.com"), Actual(group("a@x.com", "y@x.com")), third.memory, t3
    )
    back = evaluate(
        AUD,
        expected("a@x.com", "y@x.com"),
        Actual(group("a@x.com", "y@x.com")),
        regrant.memory,
        t3 + timedelta(minutes=1),
    )
    assert [r.email for r in back.revoked] == ["y@x.com"]


def test_each_side_keeps_its_onset_while_drift_since_keeps_the_episode() -> None:
    start = evaluate(AUD, expected("a@x.com"), Actual(group()), DriftMemory(), NOW)
    later = NOW + timedelta(minutes=30)
    both = evaluate(AUD, expected("a@x.com"), Actual(group("z@x.com")), start.memory, later)
    assert (both.missing_since, both.extra_since, both.drift_since) == (NOW, later, NOW)
    fixed = evaluate(
        AUD,
        expected("a@x.com"),
        Actual(group("a@x.com", "z@x.com")),
        both.memory,
        later + timedelta(minutes=5),
    )
    assert (fixed.missing_since, fixed.extra_since, fixed.drift_since) == (None, later, NOW)


def test_histogram_buckets_and_totals() -> None:
    assert [bucket_of(s) for s in (0, 60, 61, 900, 901, 86400, 86401)] == [
        "60.0",
        "60.0",
        "300.0",
        "900.0",
        "1800.0",
        "86400.0",
        "+Inf",
    ]
    back = evaluate(AUD, expected(), Actual(group("z@x.com")), DriftMemory(), NOW)
    gone = evaluate(AUD, expected(), Actual(group()), back.memory, NOW + timedelta(minutes=20))
    totals = LatencyTotals().plus(gone.revoked)
    assert totals.count == 1 and totals.seconds == 1200
    assert dict(totals.cumulative())["900.0"] == 0 and dict(totals.cumulative())["1800.0"] == 1
    assert totals.cumulative()[-1] == ("+Inf", 1)


# -- settings and remove_only --------------------------------------------------------------


def test_extra_thresholds_are_settings_validated_like_the_others() -> None:
    document = Settings().as_document()
    assert document["extra_warning_threshold_seconds"] == 900
    assert document["extra_critical_threshold_seconds"] == 3600
    changed = apply_settings(Settings(), {"extra_warning_threshold_seconds": 600})
    assert changed.extra_warning_threshold_seconds == 600
    with pytest.raises(SettingsError) as bad:
        apply_settings(
            Settings(),
            {"extra_warning_threshold_seconds": 30, "extra_critical_threshold_seconds": "1h"},
        )
    assert set(bad.value.problems) == {
        "extra_warning_threshold_seconds",
        "extra_critical_threshold_seconds",
    }
    with pytest.raises(SettingsError) as crossed:
        apply_settings(Settings(), {"extra_warning_threshold_seconds": 7200})
    assert crossed.value.problems == {
        "extra_warning_threshold_seconds": "must be less than extra_critical_threshold_seconds"
    }


def test_auto_sync_accepts_remove_only() -> None:
    assert apply_settings(Settings(), {"auto_sync": "remove_only"}).auto_sync is (
        AutoSync.REMOVE_ONLY
    )
    with pytest.raises(SettingsError) as bad:
        apply_settings(Settings(), {"auto_sync": "delete"})
    assert bad.value.problems == {"auto_sync": "must be one of off, add_only, remove_only, full"}


addresses = st.from_regex(r"[a-z]{1,8}@[a-z]{1,5}\.(com|org)", fullmatch=True)


@given(st.lists(addresses, max_size=30), st.lists(addresses, max_size=30))
def test_a_remove_only_plan_never_adds(listed: list[str], wanted: list[str]) -> None:
    include = [email_rule(e) for e in listed]
    plan = plan_sync("lms", Group("g1", "lms", include), wanted, remove_only=True, force=True)
    assert plan.added == ()
    assert set(plan.removed) == {e.lower() for e in listed} - {e.lower() for e in wanted}


def test_remove_only_keeps_the_guards() -> None:
    many = [f"u{i}@x.com" for i in range(20)]
    g = Group("g1", "lms", [email_rule(e) for e in many])
    assert plan_sync("lms", g, [], remove_only=True).blocked == EMPTY_SOURCE
    assert plan_sync("lms", g, many[:10], remove_only=True).blocked == MASS_REMOVAL
    small = plan_sync("lms", g, [*many[:15], "new@x.com"], remove_only=True)
    assert small.blocked is None and small.added == () and len(small.removed) == 5
