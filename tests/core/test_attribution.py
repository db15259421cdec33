"""Who changed it, in the pure core: windows, resolution, classification, the words shown."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from exporter.core.attribution import (
    EXPIRED,
    EXPORTER,
    FOUND,
    MANUAL,
    NOT_FOUND,
    PENDING,
    RETENTION,
    VAULT,
    VAULT_API,
    Coverage,
    GroupChange,
    OwnWrite,
    attribution_from_text,
    attribution_text,
    classify,
    pending_windows,
)
from exporter.core.document import member_document
from exporter.core.drift import attribute, evaluate
from exporter.core.model import (
    Actual,
    Attribution,
    Audience,
    ChangedBy,
    DriftMemory,
    Expected,
    Group,
)
from exporter.core.wording import hint, member_note

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
BEFORE = NOW - timedelta(minutes=15)  # the previous check that saw both sides
AUD = Audience("lms-viewer", "lms", "cloudflare_access", "g1")


def group(*members: str) -> Actual:
    return Actual(Group("g1", "lms-viewer", [{"email": {"email": m}} for m in members]))


def vault(**members: datetime) -> Expected:
    return Expected({f"{k}@x.com": v.strftime("%Y-%m-%dT%H:%M:%SZ") for k, v in members.items()})


def change(log_id: str, at: datetime, added=(), removed=(), **fields: object) -> GroupChange:
    base = GroupChange(
        log_id, "g1", at, actor_email="jane@corp.example", actor_type="user", interface="UI",
        added=frozenset(added), removed=frozenset(removed), source=MANUAL,
    )  # fmt: skip
    return replace(base, **fields)  # type: ignore[arg-type]


def previously_seen() -> DriftMemory:
    """A check at BEFORE saw both sides in step."""
    return DriftMemory(observed_at=BEFORE)


def test_a_new_drifting_member_is_pending_after_the_last_check_that_saw_both_sides() -> None:
    check = evaluate(
        AUD, vault(a=NOW - timedelta(days=3)), group("z@x.com"), previously_seen(), NOW
    )
    [extra], [missing] = check.extra, check.missing
    assert extra.attribution == Attribution(PENDING, since=BEFORE)
    assert missing.attribution == Attribution(PENDING, since=BEFORE)
    assert check.memory.attributions[("extra", "z@x.com")] == Attribution(PENDING, since=BEFORE)


def test_a_vault_grant_newer_than_the_last_check_explains_a_missing_member() -> None:
    granted = BEFORE + timedelta(minutes=5)
    check = evaluate(AUD, vault(a=granted), group(), previously_seen(), NOW)
    assert check.missing[0].attribution == Attribution(VAULT)
    assert pending_windows([check], NOW) == {}
    assert "added in Vault recently" in hint(check.missing[0], NOW)


def test_pending_windows_span_the_members_onsets_per_group() -> None:
    check = evaluate(AUD, vault(), group("z@x.com"), previously_seen(), NOW)
    window = pending_windows([check], NOW)["g1"]
    assert window.since < BEFORE and window.until > NOW  # a moment past first sight


def test_an_entry_that_added_the_member_in_its_window_attributes_it() -> None:
    check = evaluate(AUD, vault(), group("z@x.com"), previously_seen(), NOW)
    entries = [
        change("old", BEFORE - timedelta(days=2), added={"z@x.com"}),  # before the window
        change("e1", BEFORE + timedelta(minutes=3), added={"z@x.com"}),
        change("e2", BEFORE + timedelta(minutes=4), added={"y@x.com"}),  # names someone else
    ]
    done = attribute(check, entries, Coverage(BEFORE - timedelta(hours=1), NOW), NOW)
    member = done.extra[0]
    assert member.attribution is not None and member.attribution.outcome == FOUND
    assert member.attribution.changed_by == ChangedBy(
        "jane@corp.example", "user", "dashboard", BEFORE + timedelta(minutes=3), "e1", MANUAL
    )
    assert hint(member, NOW) == "added by jane@corp.example in the dashboard 12 min ago"
    assert done.memory.attributions[("extra", "z@x.com")] == member.attribution
    # reports read the note: the same words, dated instead of aged
    assert done.memory.notes[("extra", "z@x.com")] == (
        "added by jane@corp.example in the dashboard on 2026-11-25 at 09:48 UTC"
    )
    document = member_document(member, NOW)
    assert document["changed_by"] == {
        "actor": "jane@corp.example",
        "actor_type": "user",
        "interface": "dashboard",
        "at": "2026-11-25T09:48:00Z",
        "audit_log_id": "e1",
        "source": "manual",
    }


def test_a_manual_removal_attributes_a_missing_member() -> None:
    check = evaluate(AUD, vault(a=NOW - timedelta(days=9)), group(), previously_seen(), NOW)
    removal = change("r1", BEFORE + timedelta(minutes=1), removed={"a@x.com"}, interface="API")
    done = attribute(check, [removal], Coverage(BEFORE - timedelta(hours=1), NOW), NOW)
    assert hint(done.missing[0], NOW) == "removed by jane@corp.example through the API 14 min ago"


def test_vault_api_and_own_sync_are_named_as_such() -> None:
    by_vault_api = ChangedBy("vault-api", "user", "api", NOW - timedelta(days=3), "v", VAULT_API)
    ours = ChangedBy("vault-drift", "user", "api", NOW - timedelta(hours=2), "o", EXPORTER)
    base = evaluate(AUD, vault(a=NOW - timedelta(days=9)), group("z@x.com"), previously_seen(), NOW)
    missing = replace(base.missing[0], attribution=Attribution(FOUND, changed_by=by_vault_api))
    extra = replace(base.extra[0], attribution=Attribution(FOUND, changed_by=ours))
    assert hint(missing, NOW) == "removed with API token vault-api 3 d ago"
    assert hint(extra, NOW) == "added by vault-drift's own sync 2 h ago"


def test_a_read_window_without_an_entry_naming_the_member_says_so_and_guesses_nothing() -> None:
    check = evaluate(AUD, vault(), group("z@x.com"), previously_seen(), NOW)
    unreadable = replace(change("u1", BEFORE + timedelta(minutes=2)), added=None, removed=None)
    # read up to the first sighting only: the log may still show the entry a little late
    early = attribute(check, [unreadable], Coverage(BEFORE - timedelta(hours=1), NOW), NOW)
    assert early is check
    later = Coverage(BEFORE - timedelta(hours=1), NOW + timedelta(minutes=15))
    done = attribute(check, [unreadable], later, NOW + timedelta(minutes=15))
    member = done.extra[0]
    assert member.attribution == Attribution(NOT_FOUND)
    assert hint(member, NOW) == "in Cloudflare but not in Vault: no audit entry names them"


def test_an_unread_window_leaves_the_member_pending() -> None:
    check = evaluate(AUD, vault(), group("z@x.com"), previously_seen(), NOW)
    assert attribute(check, [], None, NOW) is check
    partly = Coverage(NOW - timedelta(minutes=5), NOW)  # does not reach back to the onset
    assert attribute(check, [], partly, NOW) is check
    assert "manually added?" in hint(check.extra[0], NOW)  # the old guess, until it is known


def test_a_drift_older_than_the_audit_logs_reach_is_expired() -> None:
    old = NOW - RETENTION - timedelta(days=1)
    memory = DriftMemory(old, {("extra", "z@x.com"): old}, observed_at=BEFORE)
    check = evaluate(AUD, vault(), group("z@x.com"), memory, NOW)
    assert pending_windows([check], NOW) == {}
    done = attribute(check, [], None, NOW)
    assert done.extra[0].attribution == Attribution(EXPIRED)
    assert "no audit entry found" in hint(done.extra[0], NOW)


def test_an_access_note_still_comes_first() -> None:
    excluded = Actual(
        Group(
            "g1", "g", [{"email": {"email": "a@x.com"}}], exclude=[{"email": {"email": "a@x.com"}}]
        )
    )
    check = evaluate(AUD, vault(a=NOW - timedelta(days=9)), excluded, previously_seen(), NOW)
    removal = change("r1", BEFORE + timedelta(minutes=1), removed={"a@x.com"})
    done = attribute(check, [removal], Coverage(BEFORE - timedelta(hours=1), NOW), NOW)
    assert member_note(done.missing[0]) == "excluded in Cloudflare"


def test_attributions_are_carried_while_members_drift_and_survive_persistence() -> None:
    check = evaluate(AUD, vault(), group("z@x.com"), previously_seen(), NOW)
    done = attribute(
        check,
        [change("e1", BEFORE + timedelta(minutes=3), added={"z@x.com"})],
        Coverage(BEFORE, NOW),
        NOW,
    )
    stored = {
        k: attribution_from_text(attribution_text(v)) for k, v in done.memory.attributions.items()
    }
    again = evaluate(AUD, vault(), group("z@x.com"), replace(done.memory, attributions=stored), NOW)  # type: ignore[arg-type]
    assert again.extra[0].attribution == done.extra[0].attribution
    assert attribution_from_text("not json") is None
    assert attribution_from_text('{"outcome": "found"}') is None  # found without its entry


def own(at: datetime, added=(), removed=()) -> OwnWrite:
    return OwnWrite("g1", at, at + timedelta(seconds=2), frozenset(added), frozenset(removed))


def test_classify_knows_vault_api_by_actor_and_the_exporter_by_its_audited_syncs() -> None:
    at = NOW - timedelta(hours=1)
    by_token = change("t", at, added={"a@x.com"}, token_id="TOK1", actor_email="ops@corp.example")
    assert classify(by_token, frozenset({"tok1"}), []) == VAULT_API
    by_email = change("m", at, actor_email="vault-api@svc.example")
    assert classify(by_email, frozenset({"vault-api@svc.example"}), []) == VAULT_API
    sync = change("s", at + timedelta(seconds=1), added={"a@x.com"}, actor_email="bot@corp.example")
    assert classify(sync, frozenset(), [own(at, added={"a@x.com"})]) == EXPORTER
    # same group and time, but not what the sync wrote: someone else's edit
    other = change("o", at + timedelta(seconds=1), added={"b@x.com"})
    assert classify(other, frozenset(), [own(at, added={"a@x.com"})]) == MANUAL
    later = change("l", at + timedelta(hours=1), added={"a@x.com"})
    assert classify(later, frozenset(), [own(at, added={"a@x.com"})]) == MANUAL
