"""Who changed a drifting member: Cloudflare's audit-log entries as the core sees them, what
they say about a member, and how that reads. Pure: no I/O, no clock reads (docs/design.md,
"Attribution").

A member that starts drifting gets an ``Attribution``: ``pending`` with the last check that
saw both sides before it drifted (the change happened after it), or ``vault`` when a Vault
grant newer than that check explains it. A pending member is looked up in the audit log
once: ``found`` (the latest entry of its window that names it, in the right direction),
``not_found`` (the window was read and no entry names it: none, or none whose values could
be read) or ``expired`` (older than the audit log keeps). Nothing is guessed: a member an
entry does not name is never given that entry's actor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from exporter.core.model import Attribution, AudienceCheck, ChangedBy, DriftMember, Side
from exporter.core.times import format_time, parse_time, time_ago

MISSING, EXTRA = Side.MISSING, Side.EXTRA
# The account audit log (v1) answers 18 months back (Cloudflare support: "Understanding
# Cloudflare Audit Logs"): an older drift has no entry to find.
RETENTION = timedelta(days=548)
# A member whose last check before it drifted is unknown (the first check ever, or a row an
# older vault-drift wrote): its change is looked for this far before it was first seen.
UNKNOWN_ONSET = timedelta(days=7)
# Cloudflare's ``when`` and our clock may disagree a little; a sync's entry may land after
# its audit row was finished.
SKEW = timedelta(minutes=2)

PENDING, FOUND, NOT_FOUND, VAULT, EXPIRED = "pending", "found", "not_found", "vault", "expired"
OUTCOMES = (PENDING, FOUND, NOT_FOUND, VAULT, EXPIRED)
MANUAL, VAULT_API, EXPORTER = "manual", "vault-api", "exporter"
EXPORTER_NAME = "vault-drift"


@dataclass(frozen=True)
class GroupChange:
    """One audit-log entry about an audience's Access group, as read.

    ``added`` / ``removed`` are the include list's email members the entry's values show
    added and removed; None when the values are missing, cut short or not JSON (then the
    entry names nobody). ``source`` is set once the entry is classified (``classify``).
    """

    audit_log_id: str
    group_id: str
    at: datetime
    actor_email: str | None = None
    actor_id: str | None = None
    actor_type: str | None = None
    token_id: str | None = None
    interface: str | None = None
    action: str | None = None
    added: frozenset[str] | None = None
    removed: frozenset[str] | None = None
    source: str | None = None

    @property
    def readable(self) -> bool:
        return self.added is not None and self.removed is not None

    def names(self, kind: str, email: str) -> bool:
        """Whether the entry made ``email`` drift this way: added it (extra), removed it
        (missing)."""
        emails = self.added if kind == EXTRA else self.removed
        return emails is not None and email in emails

    def changed_by(self) -> ChangedBy:
        source = self.source or MANUAL
        if source == VAULT_API:
            actor = "vault-api"
        elif source == EXPORTER:
            actor = EXPORTER_NAME
        else:
            actor = self.actor_email or self.actor_id or "an unknown actor"
        return ChangedBy(
            actor, self.actor_type, interface_name(self.interface), self.at, self.audit_log_id,
            source,
        )  # fmt: skip


@dataclass(frozen=True)
class Coverage:
    """The stretch of the audit log already read for a group (never read again)."""

    since: datetime
    until: datetime

    def covers(self, since: datetime, until: datetime) -> bool:
        return self.since <= since and until <= self.until


@dataclass(frozen=True)
class OwnWrite:
    """One of the exporter's own writes to a group (a sync or a group creation), as audited."""

    group_id: str
    started_at: datetime
    finished_at: datetime | None
    added: frozenset[str]
    removed: frozenset[str]


def attribution_text(attribution: Attribution) -> str:
    """As persisted with the member (``sys_infra_drift_member.attribution``)."""
    document: dict[str, Any] = {"outcome": attribution.outcome}
    if attribution.since is not None:
        document["since"] = format_time(attribution.since)
    if attribution.changed_by is not None:
        document.update(attribution.changed_by.as_document())
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def attribution_from_text(text: str | None) -> Attribution | None:
    """The persisted form read back; None for nothing or anything unreadable."""
    try:
        document = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("outcome") not in OUTCOMES:
        return None
    changed_by = None
    if document["outcome"] == FOUND:
        at = parse_time(_text(document.get("at")))
        actor, log_id = _text(document.get("actor")), _text(document.get("audit_log_id"))
        if at is None or actor is None or log_id is None:
            return None
        changed_by = ChangedBy(
            actor,
            _text(document.get("actor_type")),
            _text(document.get("interface")) or "unknown",
            at,
            log_id,
            _text(document.get("source")) or MANUAL,
        )
    return Attribution(document["outcome"], parse_time(_text(document.get("since"))), changed_by)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def interface_name(raw: str | None) -> str:
    """Cloudflare's ``interface`` in words: ``UI`` is the dashboard."""
    if not raw:
        return "unknown"
    name = raw.strip().lower()
    return {"ui": "dashboard", "dash": "dashboard", "dashboard": "dashboard"}.get(name, name)


# -- when a member starts drifting --------------------------------------------------------------


def first_attribution(
    kind: str, added_in_vault_at: datetime | None, observed_before: datetime | None
) -> Attribution:
    """A new drifting member: explained by Vault when Vault granted it after the last check
    that saw both sides (the push has not run yet); otherwise to look up, after that check."""
    if (
        kind == MISSING
        and added_in_vault_at is not None
        and observed_before is not None
        and added_in_vault_at > observed_before
    ):
        return Attribution(VAULT)
    return Attribution(PENDING, since=observed_before)


# -- what to read, and what was read --------------------------------------------------------------


def window(member: DriftMember) -> tuple[datetime, datetime]:
    """Where the entry that made ``member`` drift must be: after the last check that saw both
    sides without it drifting, up to when it was first seen, ``SKEW`` wider either side
    (Cloudflare's clock is not ours, and its log may show an entry a little late). Nothing
    is said to be missing from the log before it was read to the end of this window."""
    attribution = member.attribution
    since = attribution.since if attribution is not None else None
    start = since if since is not None else member.first_seen_at - UNKNOWN_ONSET
    return start - SKEW, member.first_seen_at + SKEW


def is_pending(member: DriftMember, now: datetime) -> bool:
    """Still to be looked up (and still within the audit log's reach)."""
    attribution = member.attribution
    return (attribution is None or attribution.outcome == PENDING) and (
        member.first_seen_at >= now - RETENTION
    )


def drifting(check: AudienceCheck) -> Iterable[DriftMember]:
    yield from check.missing
    yield from check.extra


def pending_windows(checks: Iterable[AudienceCheck], now: datetime) -> dict[str, Coverage]:
    """Per group, the stretch of the audit log its pending members need."""
    needed: dict[str, Coverage] = {}
    for check in checks:
        group_id = check.audience.group_id
        if group_id is None:
            continue
        for member in drifting(check):
            if not is_pending(member, now):
                continue
            since, until = window(member)
            known = needed.get(group_id)
            if known is not None:
                since, until = min(since, known.since), max(until, known.until)
            needed[group_id] = Coverage(since, until)
    return needed


def resolve(
    member: DriftMember,
    changes: Iterable[GroupChange],
    coverage: Coverage | None,
    now: datetime,
) -> Attribution | None:
    """A pending member's outcome from what was read; None while its window is not read."""
    attribution = member.attribution
    if attribution is not None and attribution.outcome != PENDING:
        return None
    if member.first_seen_at < now - RETENTION:
        return Attribution(EXPIRED)
    since, until = window(member)
    named = [c for c in changes if since <= c.at <= until and c.names(member.kind, member.email)]
    if named:
        latest = max(named, key=lambda c: (c.at, c.audit_log_id))
        return Attribution(FOUND, changed_by=latest.changed_by())
    if coverage is not None and coverage.covers(since, until):
        return Attribution(NOT_FOUND)
    return None


# -- whose write it was ---------------------------------------------------------------------------


def classify(
    change: GroupChange, vault_api_actors: frozenset[str], own_writes: Iterable[OwnWrite]
) -> str:
    """``vault-api`` when the actor is one of vault-api's (a token id, an actor id or an
    email, lowercased), ``exporter`` when it matches one of our own audited writes to the
    group (time, and the members added and removed when the entry shows them), else
    ``manual``."""
    actors = {v for v in (change.token_id, change.actor_id, change.actor_email) if v}
    if {a.lower() for a in actors} & vault_api_actors:
        return VAULT_API
    for write in own_writes:
        if write.group_id != change.group_id:
            continue
        end = write.finished_at or write.started_at
        if not write.started_at - SKEW <= change.at <= end + SKEW:
            continue
        if not change.readable or (change.added == write.added and change.removed == write.removed):
            return EXPORTER
    return MANUAL


# -- in words ----------------------------------------------------------------------------------


def changed_by_words(changed_by: ChangedBy, kind: str) -> str:
    """ "added by jane@corp.example in the dashboard", "removed with API token vault-api"."""
    verb = "added" if kind == EXTRA else "removed"
    interface = changed_by.interface
    if changed_by.source == EXPORTER:
        return f"{verb} by {EXPORTER_NAME}'s own sync"
    if changed_by.source == VAULT_API and interface == "api":
        return f"{verb} with API token vault-api"
    where = {"dashboard": "in the dashboard", "api": "through the API", "unknown": ""}.get(
        interface, f"through {interface}"
    )
    return " ".join(part for part in (verb, "by", changed_by.actor, where) if part)


def attribution_words(member: DriftMember, now: datetime | None) -> str | None:
    """What the audit log says about ``member``, with its age when ``now`` is given (the page,
    the API) and its date otherwise (mail and digest, read later); None when it says
    nothing yet (not looked up, or attribution is off)."""
    attribution = member.attribution
    if attribution is None:
        return None
    side = (
        "in Cloudflare but not in Vault"
        if member.kind == EXTRA
        else "in Vault but not in Cloudflare"
    )
    if attribution.outcome == FOUND and attribution.changed_by is not None:
        words = changed_by_words(attribution.changed_by, member.kind)
        at = attribution.changed_by.at
        when = time_ago((now - at).total_seconds()) if now is not None else f"on {_date(at)}"
        return f"{words} {when}"
    if attribution.outcome == NOT_FOUND:
        return f"{side}: no audit entry names them"
    if attribution.outcome == EXPIRED:
        return f"{side}: no audit entry found (older than the audit log's 18 months)"
    return None


def _date(at: datetime) -> str:
    return at.strftime("%Y-%m-%d at %H:%M UTC")
