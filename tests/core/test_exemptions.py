"""Exemptions in the pure core: who is exempt when, and what an exemption changes in a check
(status, level, onsets, exposure, revocations) and in a sync plan."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from exporter.core.drift import evaluate
from exporter.core.exemptions import (
    DELETED,
    Exemption,
    exemption_problems,
    expiring,
    is_exempt,
    reopened_at,
    split_exempt,
    sync_target,
)
from exporter.core.exposure import member_seconds
from exporter.core.levels import verdict
from exporter.core.model import Actual, Audience, DriftMemory, Expected, Group, Status
from exporter.core.plan import plan_sync
from exporter.core.settings import Levels

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
AUD = Audience("lms-viewer", "lms", "cloudflare_access", "g1")


def exemption(email: str, side: str, hours: float = 24, **changes: object) -> Exemption:
    made = Exemption(
        "lms-viewer", email, side, "contractor", "api:admin", NOW, NOW + timedelta(hours=hours)
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def group(*members: str) -> Group:
    return Group("g1", "lms-viewer", [{"email": {"email": m}} for m in members])


def expected(*members: str) -> Expected:
    return Expected({m: "2026-11-25T08:00:00Z" for m in members})


def check(memory: DriftMemory, at: datetime, *exemptions: Exemption, extra: bool = True):  # type: ignore[no-untyped-def]
    """a@x expected and listed; b@x expected, not listed; c@x listed, not expected."""
    members = ("a@x.com", "c@x.com") if extra else ("a@x.com",)
    return evaluate(
        AUD, expected("a@x.com", "b@x.com"), Actual(group(*members)), memory, at, exemptions
    )


def test_an_exemption_is_in_force_from_its_making_to_its_end_or_its_deletion() -> None:
    made = exemption("c@x.com", "extra", hours=2)
    assert is_exempt([made], "C@X.com", NOW)
    assert is_exempt([made], "c@x.com", NOW, side="extra")
    assert not is_exempt([made], "c@x.com", NOW, side="missing")
    assert not is_exempt([made], "c@x.com", NOW + timedelta(hours=2))  # ends at its end date
    deleted = replace(made, ended_at=NOW + timedelta(minutes=5), end_reason=DELETED)
    assert not is_exempt([deleted], "c@x.com", NOW + timedelta(minutes=6))
    assert deleted.ended(NOW) == NOW + timedelta(minutes=5)


def test_split_leaves_out_only_the_side_the_exemption_names() -> None:
    exemptions = [exemption("b@x.com", "extra"), exemption("c@x.com", "extra")]
    missing, extra, covered = split_exempt(["b@x.com"], ["c@x.com"], exemptions, NOW)
    assert (missing, extra, covered) == (["b@x.com"], [], {("extra", "c@x.com")})


def test_only_exempt_members_differing_is_synced_with_no_level() -> None:
    first = check(
        DriftMemory(), NOW, exemption("b@x.com", "missing"), exemption("c@x.com", "extra")
    )
    assert first.status is Status.SYNCED
    assert (first.missing, first.extra) == ((), ())
    assert first.exempt == {("missing", "b@x.com"), ("extra", "c@x.com")}
    assert verdict(first.status, None, None, NOW, Levels()).level.value == "none"


def test_the_other_members_still_drift_and_set_the_level() -> None:
    result = check(DriftMemory(), NOW, exemption("c@x.com", "extra"))
    assert result.status is Status.DRIFT
    assert [m.email for m in result.missing] == ["b@x.com"] and result.extra == ()
    assert result.memory.extra_since is None  # the exempt extra member opens no side
    later = check(result.memory, NOW + timedelta(hours=2), exemption("c@x.com", "extra", 48))
    judged = verdict(
        later.status, later.missing_since, later.extra_since, later.checked_at, Levels()
    )
    assert (judged.level.value, judged.reason) == ("warning", "missing")  # not extra's critical


def test_an_exempted_extra_member_is_not_a_revocation_and_stops_counting_exposure() -> None:
    drifting = check(DriftMemory(), NOW)
    assert [m.email for m in drifting.extra] == ["c@x.com"]
    exempted_at = NOW + timedelta(minutes=10)
    exempted = check(drifting.memory, exempted_at, exemption("c@x.com", "extra", 48))
    assert exempted.revoked == ()  # still in the group: nothing was revoked
    assert member_seconds(exempted.memory).extra == 600.0  # its 10 minutes drifting, kept
    still = check(exempted.memory, NOW + timedelta(hours=5), exemption("c@x.com", "extra", 48))
    assert member_seconds(still.memory).extra == 600.0  # and no more while exempt


def test_when_the_exemption_ends_the_member_drifts_again_from_that_moment() -> None:
    drifting = check(DriftMemory(), NOW)
    made = exemption("c@x.com", "extra", hours=3)
    exempt = check(drifting.memory, NOW + timedelta(hours=1), made)
    assert exempt.status is Status.DRIFT and exempt.extra == ()  # b@x is still missing
    after = check(exempt.memory, NOW + timedelta(hours=3, minutes=4), made)  # expired at 3 h
    (member,) = after.extra
    assert member.first_seen_at == NOW + timedelta(hours=3)  # its end, not its first sighting
    assert after.memory.extra_since == NOW + timedelta(hours=3)
    deleted = replace(made, ended_at=NOW + timedelta(hours=2), end_reason=DELETED)
    again = check(exempt.memory, NOW + timedelta(hours=2, minutes=1), deleted)
    assert again.extra[0].first_seen_at == NOW + timedelta(hours=2)


def test_an_audience_only_exempt_then_expired_opens_its_episode_at_the_end() -> None:
    made = exemption("c@x.com", "extra", hours=1)
    quiet = evaluate(
        AUD, expected("a@x.com"), Actual(group("a@x.com", "c@x.com")), DriftMemory(), NOW, (made,)
    )
    assert quiet.status is Status.SYNCED
    later = NOW + timedelta(hours=1, seconds=30)
    reopened = evaluate(
        AUD, expected("a@x.com"), Actual(group("a@x.com", "c@x.com")), quiet.memory, later, (made,)
    )
    assert reopened.status is Status.DRIFT
    assert reopened.drift_since == NOW + timedelta(hours=1)


def test_an_end_older_than_the_last_check_does_not_date_a_new_drift() -> None:
    made = exemption("c@x.com", "extra", hours=1)
    end = NOW + timedelta(hours=1)
    assert reopened_at([made], "extra", "c@x.com", end + timedelta(minutes=1), end) is None
    assert reopened_at([made], "extra", "c@x.com", NOW, end + timedelta(minutes=1)) == end
    assert reopened_at([made], "missing", "c@x.com", NOW, end + timedelta(minutes=1)) is None


def test_a_sync_plan_neither_adds_nor_removes_an_exempt_member() -> None:
    target = sync_target(
        ["a@x.com", "b@x.com"],
        ["a@x.com", "c@x.com"],
        [exemption("b@x.com", "missing"), exemption("c@x.com", "extra")],
        NOW,
    )
    assert target == {"a@x.com", "c@x.com"}
    plan = plan_sync("lms-viewer", group("a@x.com", "c@x.com"), target)
    assert plan.is_noop
    unexempt = plan_sync("lms-viewer", group("a@x.com", "c@x.com"), ["a@x.com", "b@x.com"])
    assert (unexempt.added, unexempt.removed) == (("b@x.com",), ("c@x.com",))


def test_an_exemption_of_a_member_that_does_not_differ_changes_nothing() -> None:
    # b@x is missing, exempt as extra: the wrong side; a member listed and exempt "missing"
    target = sync_target(["b@x.com"], ["a@x.com"], [exemption("b@x.com", "extra")], NOW)
    assert target == {"b@x.com"}
    result = check(DriftMemory(), NOW, exemption("b@x.com", "extra"), extra=False)
    assert [m.email for m in result.missing] == ["b@x.com"]


def test_problems_are_named_all_at_once() -> None:
    assert exemption_problems("c@x.com", "extra", "why", NOW + timedelta(days=90), NOW) == []
    problems = exemption_problems("nobody", "both", " ", NOW + timedelta(days=91), NOW)
    assert [p.split(":")[0] for p in problems] == ["email", "side", "reason", "expires_at"]
    assert exemption_problems("c@x.com", "extra", "why", NOW, NOW) == [
        "expires_at: must be in the future"
    ]


def test_expiring_lists_those_ending_within_seven_days_soonest_first() -> None:
    soon, later, far = (
        exemption("a@x.com", "extra", hours=30),
        exemption("b@x.com", "extra", hours=2),
        exemption("c@x.com", "extra", hours=24 * 8),
    )
    assert expiring([soon, later, far], NOW) == [later, soon]


def test_every_provider_plan_takes_the_exempt_members_as_keep_and_leave_out() -> None:
    listed = group("a@x.com", "c@x.com")
    plan = plan_sync(
        "lms-viewer", listed, ["a@x.com", "b@x.com"], keep={"c@x.com"}, leave_out={"b@x.com"}
    )
    assert plan.is_noop
    # AWS plans have no rule limit and only existing users: the same exemptions hold
    aws = plan_sync(
        "lms-viewer",
        listed,
        ["a@x.com", "b@x.com", "d@x.com"],
        rule_limit=None,
        accounts={"a@x.com", "b@x.com", "d@x.com"},
        keep={"c@x.com"},
        leave_out={"b@x.com"},
    )
    assert (aws.added, aws.removed) == (("d@x.com",), ())
