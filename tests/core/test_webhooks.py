"""Webhook events from checks, syncs and revocations; their bodies; the signature, as the
``standardwebhooks`` library (a receiver's) verifies it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from exporter.core.drift import evaluate
from exporter.core.model import (
    Actual,
    AlertLevel,
    Audience,
    DriftMemory,
    Expected,
    Group,
    SyncOutcome,
    SyncResultKind,
)
from exporter.core.settings import Levels
from exporter.core.signing import BadSecret, decode_secret, signed_headers
from exporter.core.webhooks import (
    Announcer,
    SyncContext,
    destination_key,
    drift_events,
    page_link,
    sessions_revoked_event,
    sync_event,
)

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
AUD = Audience("lms viewer/fr", "lms", "cloudflare_access", "g1")
URL = "https://drift.example.com"
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def group(*members: str) -> Actual:
    return Actual(Group("g1", "lms", [{"email": {"email": m}} for m in members]))


def expected(*members: str) -> Expected:
    return Expected({m: "2026-11-25T08:00:00Z" for m in members})


def step(memory: DriftMemory, at: datetime, want: tuple[str, ...], have: tuple[str, ...]):  # type: ignore[no-untyped-def]
    check = evaluate(AUD, expected(*want), group(*have), memory, at)
    events = drift_events([check], {AUD.audience: memory}, Levels(), URL)
    return check, events


def test_a_drift_opens_escalates_and_resolves_once_each() -> None:
    check, events = step(DriftMemory(), NOW, ("a@x.com",), ("a@x.com", "b@x.com"))
    assert [e.type for e in events] == ["drift.opened"]
    data = events[0].data
    assert data["level"] == "info" and data["reason"] == "extra"
    assert data["counts"] == {"expected": 1, "actual": 2, "missing": 0, "extra": 1}
    assert data["url"] == "https://drift.example.com/details?audience=lms%20viewer%2Ffr"

    same, events = step(
        check.memory, NOW + timedelta(minutes=5), ("a@x.com",), ("a@x.com", "b@x.com")
    )
    assert events == []  # still info: nothing to say

    later, events = step(
        same.memory, NOW + timedelta(minutes=16), ("a@x.com",), ("a@x.com", "b@x.com")
    )
    assert [e.type for e in events] == ["drift.level_changed"]
    assert (events[0].data["previous_level"], events[0].data["level"]) == ("info", "warning")

    done, events = step(later.memory, NOW + timedelta(minutes=20), ("a@x.com",), ("a@x.com",))
    assert [e.type for e in events] == ["drift.resolved"]
    assert events[0].data["previous_level"] == "warning"
    assert events[0].data["level"] == "none"
    assert events[0].data["reason"] == "external"
    assert events[0].data["drift_since"] == "2026-11-25T10:00:00Z"

    _, events = step(done.memory, NOW + timedelta(minutes=25), ("a@x.com",), ("a@x.com",))
    assert events == []


def test_a_check_in_error_says_nothing_and_the_level_is_judged_from_the_last_reading() -> None:
    check, _ = step(DriftMemory(), NOW, ("a@x.com", "b@x.com"), ("a@x.com",))
    failed = evaluate(AUD, expected("a@x.com"), Actual(error="boom"), check.memory, NOW)
    assert drift_events([failed], {AUD.audience: check.memory}, Levels(), URL) == []
    # back after 2 h: the missing side went past its 1 h warning while nobody could see it
    _, events = step(failed.memory, NOW + timedelta(hours=2), ("a@x.com", "b@x.com"), ("a@x.com",))
    assert [(e.type, e.data["previous_level"], e.data["level"]) for e in events] == [
        ("drift.level_changed", "info", "warning")
    ]


def test_a_resolution_by_our_own_sync_names_it() -> None:
    check, _ = step(DriftMemory(), NOW, ("a@x.com", "b@x.com"), ("a@x.com",))
    fixed = evaluate(
        AUD, expected("a@x.com", "b@x.com"), group("a@x.com", "b@x.com"), check.memory, NOW
    )
    events = drift_events(
        [fixed], {AUD.audience: check.memory}, Levels(), URL, closed_by_sync="jane"
    )
    assert events[0].data["reason"] == "sync"
    assert events[0].data["attribution"] == [{"actor": "jane", "source": "exporter"}]


def test_drift_events_carry_counts_not_member_emails() -> None:
    _, events = step(DriftMemory(), NOW, ("secret.person@x.com",), ())
    assert "secret.person" not in events[0].body()


def test_sync_events_name_the_emails_and_skip_what_changed_nothing() -> None:
    context = SyncContext("lms", "cloudflare_access", "api", "jane", AlertLevel.WARNING)
    applied = SyncOutcome(AUD.audience, SyncResultKind.SYNCED, ("new@x.com",), ("old@x.com",))
    event = sync_event(applied, context, NOW, URL)
    assert event is not None and event.type == "sync.applied"
    assert event.data["added"] == ["new@x.com"] and event.data["removed"] == ["old@x.com"]
    assert event.data["counts"] == {"added": 1, "removed": 1}
    assert event.data["attribution"] == {"actor": "jane", "trigger": "api"}
    assert event.data["level"] == "warning"
    blocked = SyncOutcome(
        AUD.audience, SyncResultKind.BLOCKED, (), ("a@x.com",), "too many", "mass_removal"
    )
    event = sync_event(blocked, context, NOW, URL)
    assert event is not None and event.type == "sync.blocked"
    assert event.data["blocked_reason"] == "mass_removal"
    for result in (SyncResultKind.NOOP, SyncResultKind.ERROR):
        assert sync_event(SyncOutcome(AUD.audience, result), context, NOW, URL) is None


def test_sessions_revoked_event() -> None:
    event = sessions_revoked_event(
        AUD.audience, "lms", "cloudflare_access", ["b@x.com", "a@x.com"], "sync", NOW, URL
    )
    assert json.loads(event.body()) == {
        "type": "sessions.revoked",
        "timestamp": "2026-11-25T10:00:00Z",
        "data": {
            "audience": AUD.audience,
            "namespace": "lms",
            "provider": "cloudflare_access",
            "status": "revoked",
            "reason": "sync",
            "counts": {"revoked": 2},
            "emails": ["a@x.com", "b@x.com"],
            "url": "https://drift.example.com/details?audience=lms%20viewer%2Ffr",
        },
    }


def test_one_id_per_event_shared_by_its_receivers() -> None:
    ids = count(1)
    announcer = Announcer(
        (destination_key("http://a/"), destination_key("http://b/")),
        URL,
        lambda: f"msg_{next(ids)}",
    )
    _, events = step(DriftMemory(), NOW, ("a@x.com",), ())
    entries = announcer.entries(events * 2)
    assert [e.event_id for e in entries] == ["msg_1", "msg_1", "msg_2", "msg_2"]
    assert len({e.destination for e in entries}) == 2
    assert Announcer((), URL, lambda: "x").entries(events) == []


def test_a_receiver_key_and_a_page_link_never_carry_the_url_or_an_email() -> None:
    key = destination_key("https://hooks.example.com/T000/B000/token-xyz")
    assert "token" not in key and key.startswith("wh_")
    assert "@" not in page_link(URL, "team@corp")  # an audience named like an email, even


# -- the signature ---------------------------------------------------------------------------


def test_a_standard_webhooks_receiver_verifies_our_signature() -> None:
    body = b'{"type":"drift.opened","timestamp":"2026-11-25T10:00:00Z","data":{}}'
    now = int(datetime.now(UTC).timestamp())
    headers = signed_headers(decode_secret(SECRET), "msg_1", now, body)
    assert Webhook(SECRET).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    other = "whsec_" + base64.b64encode(bytes(32)).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "must start with whsec_"),
        ("whsec_not base64!", "base64"),
        ("whsec_" + base64.b64encode(bytes(23)).decode(), "at least 24 bytes"),
        ("whsec_", "at least 24 bytes"),
    ],
)
def test_a_bad_secret_is_refused_without_repeating_it(secret: str, why: str) -> None:
    with pytest.raises(BadSecret) as caught:
        decode_secret(secret)
    assert why in str(caught.value)
    assert secret.removeprefix("whsec_") not in str(caught.value) or secret == "whsec_"


def test_an_unpadded_secret_is_accepted_like_the_library_does() -> None:
    unpadded = SECRET.rstrip("=")
    assert decode_secret(unpadded) == bytes(range(32))
