"""The JSON documents of the API and of ``check --json``, built from a snapshot. Pure."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter.core.exemptions import Exemption
from exporter.core.model import AudienceCheck, DriftMember, Side, Status
from exporter.core.provider import capabilities_document, provider_word
from exporter.core.sessions import SessionRevocation
from exporter.core.snapshot import Snapshot
from exporter.core.times import format_time
from exporter.core.wording import hint

LIST_LIMIT = 100  # members listed per kind in the summary document (the seed's "and N more")


@dataclass(frozen=True)
class DriftFilter:
    """The filters of ``GET /iam/drift``, shared by the operator page: a status, a namespace
    (exact), ``q`` (part of the audience name, case-insensitive) and a list of audiences."""

    status: str | None = None
    namespace: str | None = None
    q: str | None = None
    audiences: Collection[str] | None = None

    def admits(self, check: AudienceCheck) -> bool:
        name = check.audience.audience
        return (
            (self.status is None or str(check.status) == self.status)
            and (self.namespace is None or check.audience.namespace == self.namespace)
            and (not self.q or self.q.casefold() in name.casefold())
            and (self.audiences is None or name in self.audiences)
        )

    def select(self, checks: Iterable[AudienceCheck]) -> list[AudienceCheck]:
        """The admitted checks, in the seed's order."""
        return [check for check in ordered(checks) if self.admits(check)]


def drift_document(
    snapshot: Snapshot,
    now: datetime,
    status: str | None = None,
    namespace: str | None = None,
    audiences: list[str] | None = None,
    q: str | None = None,
) -> dict[str, Any]:
    """``GET /iam/drift``: the summary over all audiences, and the (filtered) items."""
    selected = DriftFilter(status, namespace, q, audiences).select(snapshot.checks.values())
    items = [item_document(check, snapshot, now) for check in selected]
    counts = snapshot.counts()
    return {
        "summary": {"total": sum(counts.values()), **counts},
        "items": items,
        "last_check": format_time(snapshot.last_check_at),
    }


def ordered(checks: Any) -> list[AudienceCheck]:
    """The seed's order: drift and error first, then by audience."""
    rank = {Status.DRIFT: 0, Status.ERROR: 1, Status.PENDING: 2, Status.SYNCED: 3}
    return sorted(checks, key=lambda c: (rank[c.status], c.audience.audience))


def item_document(check: AudienceCheck, snapshot: Snapshot, now: datetime) -> dict[str, Any]:
    audience = check.audience
    ignore = snapshot.ignore_of(audience.audience, now)
    verdict = snapshot.verdict(check, now)
    item: dict[str, Any] = {
        "audience": audience.audience,
        "namespace": audience.namespace,
        "provider": audience.provider,
        "status": str(check.status),
        "last_check_at": format_time(check.checked_at),
        "last_sync_at": format_time(audience.last_sync_at),
        "drift_since": format_time(check.drift_since),
        "missing_since": format_time(check.missing_since),
        "extra_since": format_time(check.extra_since),
        "alert_level": str(verdict.level),
        "alert_reason": verdict.reason,
        "ignored_until": format_time(ignore.until) if ignore else None,
        "ignore_reason": ignore.reason if ignore else None,
        "expected_count": check.expected_count,
        "actual_count": check.actual_count,
    }
    if check.status is Status.DRIFT:
        item["drift_details"] = {
            "expected_count": check.expected_count,
            "actual_count": check.actual_count,
            "missing": [m.email for m in check.missing[:LIST_LIMIT]],
            "extra": [m.email for m in check.extra[:LIST_LIMIT]],
            "missing_total": len(check.missing),
            "extra_total": len(check.extra),
        }
    if check.status is Status.ERROR:
        item["error_message"] = check.error_message
    return item


def member_document(
    member: DriftMember, now: datetime | None = None, where: str = "Cloudflare"
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "email": member.email,
        "first_seen_at": format_time(member.first_seen_at),
        "hint": hint(member, now, where),
        "changed_by": changed_by_document(member),
    }
    if member.kind == Side.MISSING:
        document["added_in_vault_at"] = format_time(member.added_in_vault_at)
    return document


def changed_by_document(member: DriftMember) -> dict[str, Any] | None:
    """Who made the member drift, from Cloudflare's audit log (docs/design.md, "Attribution");
    None when no entry explains it (not looked up yet, none found, or a Vault change)."""
    attribution = member.attribution
    if attribution is None or attribution.changed_by is None:
        return None
    return attribution.changed_by.as_document()


def audience_document(
    check: AudienceCheck,
    snapshot: Snapshot,
    now: datetime,
    limit: int,
    offset: int,
    history: list[dict[str, Any]],
    syncs: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """``GET /iam/drift/{audience}``: one audience in full, members paginated."""
    document = item_document(check, snapshot, now)
    document.pop("drift_details", None)
    document["group_id_present"] = check.audience.group_id is not None
    document["provider_capabilities"] = capabilities_document(check.audience.provider)
    shown = slice(offset, offset + limit)
    where = provider_word(check.audience.provider)
    document["missing"] = [member_document(m, now, where) for m in check.missing[shown]]
    document["extra"] = [member_document(m, now, where) for m in check.extra[shown]]
    document["missing_total"] = len(check.missing)
    document["extra_total"] = len(check.extra)
    document["limit"] = limit
    document["offset"] = offset
    document["other_rules"] = [{"list": r.list_name, "rule": r.rule} for r in check.other_rules]
    document["history"] = history
    document["syncs"] = list(syncs)
    document["exemptions"] = [
        exemption_document(e, check) for e in snapshot.exemptions_of(check.audience.audience, now)
    ]
    return document


def exemption_document(exemption: Exemption, check: AudienceCheck | None) -> dict[str, Any]:
    """One exemption; ``applies``: the member differs on that side at the last check, so
    the exemption is what keeps it from being drift."""
    document: dict[str, Any] = {
        "email": exemption.email,
        "side": str(exemption.side),
        "reason": exemption.reason,
        "owner": exemption.owner,
        "expires_at": format_time(exemption.expires_at),
        "created_at": format_time(exemption.created_at),
        "applies": check is not None and (exemption.side, exemption.email) in check.exempt,
    }
    if exemption.end_reason is not None:
        document["ended_at"] = format_time(exemption.ended(exemption.expires_at))
        document["ended_by"] = exemption.ended_by
        document["end_reason"] = exemption.end_reason
    return document


def revocations_document(revocations: Sequence[SessionRevocation]) -> dict[str, Any]:
    """The audience's recent session revocations (README, "Effective removal"), newest first
    (``provider_capabilities.session_revocation`` says whether its provider has any)."""
    return {
        "revocations": [
            {
                "email": r.email,
                "reason": r.reason,
                "state": r.state,
                "removed_at": format_time(r.removed_at),
                "revoked_at": format_time(r.revoked_at),
                "first_seen_at": format_time(r.first_seen_at),
                "attempts": r.attempts,
                "last_error": r.last_error,
            }
            for r in revocations
        ],
    }
