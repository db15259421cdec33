"""The page's view at scale: what needs action first, and members grouped by their hint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from exporter.core.document import DriftFilter
from exporter.core.model import (
    Audience,
    AudienceCheck,
    DriftMember,
    DriftMemory,
    Ignore,
    Status,
)
from exporter.core.overview import attention_level, by_attention, needs_action, preview
from exporter.core.snapshot import Snapshot
from exporter.core.wording import hint

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
RECENT = "added in Vault recently: the push to Cloudflare may not have run yet"
PUSH_FAILED = "in Vault but not in Cloudflare: push failed or removed by hand"


def check(
    name: str,
    status: Status,
    since: timedelta | None = None,
    namespace: str = "lms",
    missing: int = 1,
) -> AudienceCheck:
    onset = NOW - since if since is not None else None
    memory = DriftMemory(
        drift_since=onset if status is Status.DRIFT else None,
        missing_since=onset if status is Status.DRIFT else None,
        error_since=onset if status is Status.ERROR else None,
    )
    members = tuple(
        DriftMember(f"m{i}@example.com", "missing", onset or NOW)
        for i in range(missing if status is Status.DRIFT else 0)
    )
    audience = Audience(name, namespace, "cloudflare_access", "g")
    return AudienceCheck(audience, status, NOW, 3, 2, missing=members, memory=memory)


def snapshot(*checks: AudienceCheck, ignored: tuple[str, ...] = ()) -> Snapshot:
    ignores = {name: Ignore(NOW + timedelta(hours=1), "later") for name in ignored}
    return Snapshot(checks={c.audience.audience: c for c in checks}, ignores=ignores)


def test_most_urgent_first_then_oldest_then_name() -> None:
    checks = [
        check("pending", Status.PENDING),
        check("info-young", Status.DRIFT, timedelta(minutes=5)),
        check("info-older", Status.DRIFT, timedelta(minutes=40)),
        check("critical", Status.DRIFT, timedelta(days=2)),
        check("error", Status.ERROR, timedelta(minutes=1)),
        check("warning-old", Status.DRIFT, timedelta(hours=20)),
        check("warning", Status.DRIFT, timedelta(hours=2)),
        check("ignored-critical", Status.DRIFT, timedelta(days=3)),
    ]
    snap = snapshot(*checks, ignored=("ignored-critical",))
    order = [c.audience.audience for c in by_attention(checks, snap, NOW)]
    assert order == [
        "critical",
        "warning-old",
        "warning",
        "error",  # an error counts as a warning; it is younger than both drifts
        "info-older",
        "info-young",
        "pending",
        "ignored-critical",
    ]
    assert str(attention_level(checks[4], snap, NOW)) == "warning"


def test_in_sync_does_not_need_action() -> None:
    assert not needs_action(check("ok", Status.SYNCED))
    assert all(needs_action(check("x", s)) for s in (Status.DRIFT, Status.ERROR, Status.PENDING))


def members(count: int, added_ago: timedelta, prefix: str) -> list[DriftMember]:
    return [
        DriftMember(f"{prefix}{i:03d}@example.com", "missing", NOW, NOW - added_ago)
        for i in range(count)
    ]


def test_a_hint_shared_by_many_members_is_written_once() -> None:
    side = [*members(600, timedelta(days=90), "old"), *members(400, timedelta(minutes=5), "new")]
    shown = preview(side)
    assert shown.total == 1000 and shown.more == 995
    assert [(g.hint, g.total, len(g.shown)) for g in shown.groups] == [
        (PUSH_FAILED, 600, 3),
        (RECENT, 400, 2),
    ]
    assert [m.email for m in shown.groups[0].shown] == [
        "old000@example.com",
        "old001@example.com",
        "old002@example.com",
    ]


def test_a_rare_hint_is_not_hidden_by_a_common_one() -> None:
    excluded = DriftMember("ex@example.com", "missing", NOW, NOW - timedelta(days=9), True)
    shown = preview([*members(12, timedelta(days=9), "a"), excluded])
    assert [(g.hint, g.total, len(g.shown)) for g in shown.groups] == [
        (PUSH_FAILED, 12, 4),
        ("excluded in Cloudflare", 1, 1),
    ]


@given(st.lists(st.sampled_from([timedelta(days=3), timedelta(0)]), max_size=40), st.integers(0, 8))
def test_preview_shows_at_most_limit_and_counts_every_member(
    ages: list[timedelta], limit: int
) -> None:
    side = [DriftMember(f"m{i}@x.com", "missing", NOW, NOW - age) for i, age in enumerate(ages)]
    shown = preview(side, limit=limit)
    listed = [m for g in shown.groups for m in g.shown]
    assert len(listed) == min(limit, len(side)) == len(side) - shown.more
    assert sum(g.total for g in shown.groups) <= len(side)
    assert all(hint(m) == g.hint for g in shown.groups for m in g.shown)


def test_the_page_and_the_api_filter_alike() -> None:
    checks = [
        check("LMS-Instructors", Status.DRIFT, timedelta(hours=1)),
        check("lms-viewer", Status.PENDING),
        check("sales", Status.SYNCED, namespace="sales"),
    ]
    assert [c.audience.audience for c in DriftFilter(q="lms-").select(checks)] == [
        "LMS-Instructors",
        "lms-viewer",
    ]
    selected = DriftFilter(status="pending", namespace="lms", q="VIEW").select(checks)
    assert [c.audience.audience for c in selected] == ["lms-viewer"]
    assert DriftFilter(namespace="sales", q="lms").select(checks) == []
