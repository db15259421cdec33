"""What the operator page's templates are given: the list's query (filters and paging, all in
the URL) and the view of the snapshot it selects. No I/O: built from a snapshot and ``now``.

The filters are ``GET /iam/drift``'s (``DriftFilter``): the page selects what the API would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from exporter.core.document import DriftFilter
from exporter.core.levels import LEVEL_RANK
from exporter.core.model import AlertLevel, AudienceCheck, Side, Status
from exporter.core.overview import attention_level, by_attention, needs_action, preview, since
from exporter.core.provider import provider_word
from exporter.core.sessions import CANCELLED, PENDING, REVOKED, SessionRevocation
from exporter.core.snapshot import Snapshot
from exporter.core.times import format_time

CARDS_PER_PAGE = 8  # audiences needing action shown as cards per page of the list
STATUSES = tuple(str(s) for s in (Status.DRIFT, Status.ERROR, Status.PENDING, Status.SYNCED))
MAX_TEXT = 200
SESSIONS_SHOWN = 10  # recent session revocations on an audience's details
WHY = {"sync": "sync", "auto_sync": "auto-sync", "observed_removal": "removed by someone else"}


def card_id(audience: str) -> str:
    """An element id for an audience: names are user data, ids must be plain."""
    return "aud-" + hashlib.sha256(audience.encode()).hexdigest()[:12]


def details_url(audience: str, offset: int = 0, limit: int | None = None) -> str:
    query: dict[str, Any] = {"audience": audience}
    if offset:
        query["offset"] = offset
    if limit is not None:
        query["limit"] = limit
    return "/details?" + urlencode(query)


@dataclass(frozen=True)
class ListQuery:
    """``/?status=&namespace=&q=&offset=``: what a link from an alert or a mail opens."""

    status: str | None = None
    namespace: str | None = None
    q: str | None = None
    offset: int = 0
    problems: tuple[str, ...] = field(default=(), compare=False)
    exempt: bool = False  # only the audiences with an exemption in force

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> ListQuery:
        """Lenient, as a page must be: a bad value is reported and left out, never a 4xx."""
        problems = []
        status = (params.get("status") or "").strip() or None
        if status is not None and status not in STATUSES:
            problems.append(f"unknown status “{status[:MAX_TEXT]}”: showing every status")
            status = None
        namespace = (params.get("namespace") or "").strip()[:MAX_TEXT] or None
        q = (params.get("q") or "").strip()[:MAX_TEXT] or None
        raw = (params.get("offset") or "0").strip()
        offset = int(raw) if raw.isdigit() and len(raw) < 9 else 0
        exempt = (params.get("exempt") or "").strip().lower() in ("1", "on", "true", "yes")
        return cls(status, namespace, q, offset, tuple(problems), exempt)

    @property
    def filter(self) -> DriftFilter:
        return DriftFilter(self.status, self.namespace, self.q)

    @property
    def filtered(self) -> bool:
        return bool(self.status or self.namespace or self.q or self.exempt)

    def url(self, **changes: Any) -> str:
        """This query as a link, with ``changes`` (a filter change starts at offset 0)."""
        query = replace(self, **{"offset": 0, **changes}) if changes else self
        params = {
            key: value
            for key, value in (
                ("status", query.status),
                ("namespace", query.namespace),
                ("q", query.q),
                ("exempt", "1" if query.exempt else None),
                ("offset", query.offset or None),
            )
            if value
        }
        return "/?" + urlencode(params) if params else "/"


def card(check: AudienceCheck, snapshot: Snapshot, now: datetime) -> dict[str, Any]:
    name = check.audience.audience
    verdict = snapshot.verdict(check, now)
    where = provider_word(check.audience.provider)
    return {
        "audience": name,
        "id": card_id(name),
        "namespace": check.audience.namespace,
        "status": str(check.status),
        "level": str(verdict.level),
        "reason": verdict.reason,  # the side that set the level: missing | extra
        "since": since(check),
        "ignore": snapshot.ignore_of(name, now),
        "exemptions": snapshot.exemptions_of(name, now),
        "check": check,
        "missing": preview(check.missing, now, where=where),
        "extra": preview(check.extra, now, where=where),
        "where": where,
        "details_url": details_url(name),
    }


def badge(snapshot: Snapshot, now: datetime, on_page: set[str]) -> dict[str, Any]:
    """The header badge: audiences alerting, coloured by the worst level (error >= warning).

    An entry links to its card when the card is on this page, else to its details view.
    """
    worst, entries = AlertLevel.NONE, []
    for check in by_attention(snapshot.alerting(now), snapshot, now):
        name = check.audience.audience
        if check.status is Status.ERROR:
            summary = "API error"
        else:
            parts = [(len(check.missing), Side.MISSING), (len(check.extra), Side.EXTRA)]
            summary = ", ".join(f"{n} {word}" for n, word in parts if n)
        worst = max(worst, attention_level(check, snapshot, now), key=LEVEL_RANK.__getitem__)
        href = f"#{card_id(name)}" if name in on_page else details_url(name)
        entries.append(
            {"audience": name, "summary": summary, "href": href, "status": str(check.status)}
        )
    return {"count": len(entries), "level": str(worst), "entries": entries}


def in_sync_row(check: AudienceCheck, exempt: int = 0) -> dict[str, Any]:
    name = check.audience.audience
    return {
        "audience": name,
        "exempt": exempt,  # exemptions in force
        "namespace": check.audience.namespace,
        "members": check.actual_count,
        "checked_at": check.checked_at,
        "last_sync_at": check.audience.last_sync_at,
        "details_url": details_url(name),
    }


def overview(snapshot: Snapshot, now: datetime, query: ListQuery) -> dict[str, Any]:
    """The live parts of ``/``: badge, widget counts, the cards of one page, the in-sync table."""
    selected = query.filter.select(snapshot.checks.values())
    if query.exempt:
        selected = [c for c in selected if snapshot.exemptions_of(c.audience.audience, now)]
    action = by_attention([c for c in selected if needs_action(c)], snapshot, now)
    offset = query.offset if query.offset < len(action) else 0
    shown = action[offset : offset + CARDS_PER_PAGE]
    in_sync = sorted(
        (c for c in selected if c.status is Status.SYNCED), key=lambda c: c.audience.audience
    )
    return {
        "snapshot": snapshot,
        "counts": snapshot.counts(),
        "badge": badge(snapshot, now, {c.audience.audience for c in shown}),
        "query": query,
        "namespaces": sorted({c.audience.namespace for c in snapshot.checks.values()}),
        "cards": [card(c, snapshot, now) for c in shown],
        "action_total": len(action),
        "first": offset + 1 if shown else 0,
        "last": offset + len(shown),
        "previous": query.url(offset=max(0, offset - CARDS_PER_PAGE)) if offset else None,
        "next": query.url(offset=offset + CARDS_PER_PAGE)
        if offset + CARDS_PER_PAGE < len(action)
        else None,
        "in_sync": [
            in_sync_row(c, len(snapshot.exemptions_of(c.audience.audience, now))) for c in in_sync
        ],
        "show_in_sync": query.status in (None, str(Status.SYNCED)),
        "in_sync_open": query.status == str(Status.SYNCED)
        or (bool(query.q or query.exempt) and not action),
    }


def sessions_ended(revocations: list[SessionRevocation]) -> list[dict[str, Any]]:
    """The details' "Sessions ended": the audience's latest session revocations, newest first
    (the audience document's ``revocations``; README, "Effective removal")."""
    rows = []
    for r in revocations[:SESSIONS_SHOWN]:
        if r.state == REVOKED:
            result = "ended"
        elif r.state == PENDING:
            tries = f"{r.attempts} failed attempt{'s' if r.attempts != 1 else ''}"
            result = f"pending after {tries}" if r.last_error else "pending"
        else:
            result = f"not ended: {r.last_error}" if r.state == CANCELLED else r.state
        rows.append(
            {
                "email": r.email,
                "why": WHY.get(r.reason, r.reason),
                "removed_at": format_time(r.removed_at),
                "revoked_at": format_time(r.revoked_at),
                "result": result,
                "error": r.last_error if r.state == PENDING else None,
            }
        )
    return rows
