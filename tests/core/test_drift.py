"""The pure core: diff, status, episodes and first-seen carried over, alert levels, ignores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from exporter.core.drift import diff, evaluate
from exporter.core.levels import active_ignore, alert_level
from exporter.core.model import (
    Actual,
    AlertLevel,
    Audience,
    DriftMemory,
    Expected,
    Group,
    Ignore,
    Status,
)
from exporter.core.rules import actual_of, email_members, other_rules
from exporter.core.settings import Thresholds
from exporter.core.wording import hint

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
AUD = Audience("lms-viewer", "lms", "cloudflare_access", "g1")
emails = st.lists(
    st.from_regex(r"[A-Za-z0-9.]{1,8}@[a-z]{1,5}\.(com|org)", fullmatch=True), max_size=20
)


def group(*members: str, others: tuple[dict, ...] = ()) -> Group:
    return Group("g1", "lms-viewer", [*others, *({"email": {"email": m}} for m in members)])


def expected(*members: str) -> Expected:
    return Expected({m.lower(): "2026-11-25T08:00:00Z" for m in members})


@given(emails, emails)
def test_diff_is_the_case_insensitive_set_difference(want: list[str], have: list[str]) -> None:
    shouted = [e.upper() for e in have]
    missing, extra = diff(want, shouted)
    lower_want, lower_have = {e.lower() for e in want}, {e.lower() for e in have}
    assert set(missing) == lower_want - lower_have
    assert set(extra) == lower_have - lower_want
    assert missing == sorted(missing) and extra == sorted(extra)


def test_only_email_rules_of_include_are_members() -> None:
    include = [
        {"email": {"email": "A@x.com"}},
        {"email_domain": {"domain": "x.com"}},
        {"everyone": {}},
        {"group": {"id": "abc"}},
        {"future_rule_type": {"email": "not-a-member@x.com"}},
        {"email": {"email": "  b@x.com "}},
    ]
    assert email_members(include) == {"a@x.com", "b@x.com"}
    assert [next(iter(r)) for r in other_rules(include)] == [
        "email_domain",
        "everyone",
        "group",
        "future_rule_type",
    ]


def test_equal_sets_are_synced_and_clear_the_memory() -> None:
    memory = DriftMemory(NOW - timedelta(hours=3), {("missing", "a@x.com"): NOW})
    check = evaluate(AUD, expected("a@x.com"), Actual(group("A@X.com")), memory, NOW)
    assert check.status is Status.SYNCED
    # The drift is forgotten; the member-seconds it accrued are kept (the exposure counters).
    assert check.drift_since is None and check.memory == DriftMemory(observed_at=NOW)


def test_drift_keeps_its_start_and_each_member_first_seen() -> None:
    start = NOW - timedelta(hours=5)
    memory = DriftMemory(start, {("missing", "a@x.com"): start})
    check = evaluate(AUD, expected("a@x.com", "b@x.com"), Actual(group("c@x.com")), memory, NOW)
    assert check.status is Status.DRIFT
    assert check.drift_since == start
    seen = {(m.kind, m.email): m.first_seen_at for m in (*check.missing, *check.extra)}
    assert seen == {
        ("missing", "a@x.com"): start,
        ("missing", "b@x.com"): NOW,
        ("extra", "c@x.com"): NOW,
    }
    assert check.missing[0].added_in_vault_at == datetime(2026, 11, 25, 8, tzinfo=UTC)


def test_a_drift_that_clears_and_returns_is_a_new_episode() -> None:
    first = evaluate(AUD, expected("a@x.com"), Actual(group()), DriftMemory(), NOW)
    cleared = evaluate(AUD, expected("a@x.com"), Actual(group("a@x.com")), first.memory, NOW)
    later = NOW + timedelta(hours=2)
    again = evaluate(AUD, expected("a@x.com"), Actual(group()), cleared.memory, later)
    assert first.drift_since == NOW
    assert again.drift_since == later


def test_incomplete_data_is_error_never_synced_or_drift() -> None:
    memory = DriftMemory(NOW - timedelta(hours=2), {("extra", "z@x.com"): NOW})
    cases = [
        (Expected(error="Vault unreadable"), Actual(group("a@x.com"))),
        (expected("a@x.com"), Actual(error="Cloudflare API 429")),
        (expected("a@x.com"), Actual()),  # the group is gone
    ]
    for exp, act in cases:
        check = evaluate(AUD, exp, act, memory, NOW)
        assert check.status is Status.ERROR
        assert check.error_message
        assert check.memory.drift_since == memory.drift_since  # the episode is not reset
        assert check.memory.consecutive_errors == 1


def test_no_group_is_pending() -> None:
    pending = Audience("lms-viewer", "lms", "cloudflare_access", None)
    check = evaluate(pending, expected("a@x.com"), Actual(), DriftMemory(), NOW)
    assert check.status is Status.PENDING and check.expected_count == 1


def test_compact_keeps_members_and_other_rules_only() -> None:
    g = group("a@x.com", others=({"ip": {"ip": "10.0.0.0/8"}},))
    actual = actual_of(g)
    assert actual.emails == frozenset({"a@x.com"})
    assert actual.group is not None and actual.group.include == [{"ip": {"ip": "10.0.0.0/8"}}]
    assert evaluate(AUD, expected("a@x.com"), actual, DriftMemory(), NOW).status is Status.SYNCED


def test_alert_levels_at_the_thresholds() -> None:
    t = Thresholds(3600, 86400)

    def level(age: timedelta) -> AlertLevel:
        return alert_level(Status.DRIFT, NOW - age, NOW, t)

    assert level(timedelta(minutes=59)) is AlertLevel.INFO
    assert level(timedelta(minutes=61)) is AlertLevel.WARNING
    assert level(timedelta(hours=23)) is AlertLevel.WARNING
    assert level(timedelta(hours=25)) is AlertLevel.CRITICAL
    assert alert_level(Status.SYNCED, None, NOW, t) is AlertLevel.NONE
    assert alert_level(Status.ERROR, NOW - timedelta(days=3), NOW, t) is AlertLevel.NONE


def test_ignore_expires_by_itself() -> None:
    ignore = Ignore(NOW + timedelta(hours=1), "migration")
    assert active_ignore(ignore, NOW) is ignore
    assert active_ignore(ignore, NOW + timedelta(hours=1)) is None
    assert active_ignore(None, NOW) is None


def test_hints_tell_recent_additions_from_old_ones() -> None:
    check = evaluate(
        AUD,
        Expected({"new@x.com": "2026-11-25T09:50:00Z", "old@x.com": "2026-01-01T00:00:00Z"}),
        Actual(group("manual@x.com")),
        DriftMemory(),
        NOW,
    )
    hints = {m.email: hint(m) for m in (*check.missing, *check.extra)}
    assert "recently" in hints["new@x.com"]
    assert "recently" not in hints["old@x.com"]
    assert "manually added" in hints["manual@x.com"]


def test_an_excluded_expected_member_is_missing_with_its_hint() -> None:
    g = Group(
        "g1",
        "lms-viewer",
        [{"email": {"email": "a@x.com"}}, {"email": {"email": "Barred@X.com"}}],
        exclude=[{"email": {"email": "barred@x.com"}}, {"email": {"email": "nobody@x.com"}}],
    )
    for actual in (Actual(g), actual_of(g)):
        check = evaluate(AUD, expected("a@x.com", "barred@x.com"), actual, DriftMemory(), NOW)
        assert check.status is Status.DRIFT
        assert [m.email for m in check.missing] == ["barred@x.com"] and check.extra == ()
        assert hint(check.missing[0]) == "excluded in Cloudflare"
        assert check.actual_count == 1  # an excluded person is not a member
        assert check.memory.notes == {("missing", "barred@x.com"): "excluded in Cloudflare"}


def test_a_missing_member_covered_by_a_domain_rule_stays_missing_with_a_hint() -> None:
    domain_rule = {"email_domain": {"domain": "Example.com"}}
    g = group("a@x.com", others=(domain_rule,))
    for actual in (Actual(g), actual_of(g)):
        check = evaluate(
            AUD, expected("a@x.com", "b@example.com", "c@y.com"), actual, DriftMemory(), NOW
        )
        hints = {m.email: hint(m) for m in check.missing}
        assert hints["b@example.com"] == "has access through the domain rule example.com"
        assert "domain rule" not in hints["c@y.com"]


def test_other_rules_come_from_all_three_lists_each_marked() -> None:
    g = Group(
        "g1",
        "lms-viewer",
        [{"ip": {"ip": "10.0.0.0/8"}}, {"email": {"email": "a@x.com"}}],
        exclude=[{"email": {"email": "z@x.com"}}],
        require=[{"geo": {"country_code": "FR"}}],
    )
    check = evaluate(AUD, expected("a@x.com"), actual_of(g), DriftMemory(), NOW)
    assert check.status is Status.SYNCED
    assert [(r.list_name, r.rule) for r in check.other_rules] == [
        ("include", {"ip": {"ip": "10.0.0.0/8"}}),
        ("exclude", {"email": {"email": "z@x.com"}}),
        ("require", {"geo": {"country_code": "FR"}}),
    ]


def test_an_error_keeps_the_access_notes_of_the_open_episode() -> None:
    key = ("missing", "barred@x.com")
    memory = DriftMemory(NOW, {key: NOW}, notes={key: "excluded in Cloudflare"})
    check = evaluate(AUD, expected("barred@x.com"), Actual(error="timeout"), memory, NOW)
    assert check.status is Status.ERROR and check.memory.notes == memory.notes


def test_held_members_gone_from_vault_and_the_group_since_the_last_check_have_left() -> None:
    """README, "Effective removal": a vault-api push between two checks is seen from what the
    previous check held (granted and present), never from a guess."""
    first = evaluate(
        AUD,
        expected("a@x.com", "b@x.com", "c@x.com"),
        Actual(group("a@x.com", "b@x.com", "z@x.com")),  # c missing, z extra
        DriftMemory(),
        NOW,
        track_held=True,
    )
    assert first.held is not None and first.left == ()
    later = NOW + timedelta(minutes=1)
    # a: gone from both (left); b: gone from the group, still granted (missing, not a leaver);
    # c: never held; z: extra before, gone now (the revocation path, not ``left``).
    second = evaluate(
        AUD,
        expected("b@x.com", "c@x.com"),
        Actual(group("c@x.com")),
        first.memory,
        later,
        held_before=first.held,
        track_held=True,
    )
    assert second.left == ("a@x.com",)
    assert [r.email for r in second.revoked] == ["z@x.com"]
    errored = evaluate(
        AUD, expected("c@x.com"), Actual(error="429"), second.memory, later, held_before=second.held
    )
    assert errored.held == second.held and errored.left == ()  # kept until a check reads both
    untracked = evaluate(AUD, expected("a@x.com"), Actual(group("a@x.com")), DriftMemory(), NOW)
    assert untracked.held is None and untracked.left == ()
