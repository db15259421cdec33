"""Effective removal: who has their Cloudflare Access sessions ended, and when. Pure.

Removing an email from an Access group does not end that person's sessions; Cloudflare's
``revoke_user`` does (README, "Effective removal"). A *leaver* is an email that stopped being
a member of an audience's group while Vault does not grant it that audience: removed by our
own sync or auto-sync, or by anyone else as a check observed it (extra at the previous check,
gone now; or held by the previous check as Vault granted it, gone now from both: a vault-api
push between two checks). Each leaver becomes a revocation that is persisted, then sent,
and retried until Cloudflare answers success. These functions decide; the service sends and
the store keeps.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from exporter.core.exposure import LatencyTotals, bucket_of
from exporter.core.model import AudienceCheck, Revocation, SyncOutcome, SyncResultKind
from exporter.core.plan import removal_allowance
from exporter.core.provider import CAPABILITIES

SYNC, AUTO_SYNC, OBSERVED = "sync", "auto_sync", "observed_removal"
REASONS = (SYNC, AUTO_SYNC, OBSERVED)
PENDING, REVOKED, CANCELLED = "pending", "revoked", "cancelled"
OK, FAILED = "ok", "failed"  # vault_drift_session_revocations_total's results
# Only providers with a call that ends sessions (Cloudflare Access; AWS has none).
REVOKING_PROVIDERS = frozenset(name for name, c in CAPABILITIES.items() if c.session_revocation)


@dataclass(frozen=True)
class Leaver:
    """An email that left an audience's group and is not granted it by Vault."""

    audience: str
    namespace: str
    provider: str
    email: str
    reason: str  # sync | auto_sync | observed_removal
    removed_at: datetime
    first_seen_at: datetime | None = None  # first seen extra; None: never seen extra


@dataclass(frozen=True)
class SessionRevocation:
    """A leaver's revocation as persisted: ``pending`` until Cloudflare answers success
    (``revoked``), or ``cancelled`` when Vault granted the email that audience again."""

    id: int
    audience: str
    namespace: str
    provider: str
    email: str
    reason: str
    removed_at: datetime
    first_seen_at: datetime | None
    state: str = PENDING
    attempts: int = 0
    revoked_at: datetime | None = None
    last_error: str | None = None

    @property
    def access_end_seconds(self) -> float | None:
        """From first seen extra (or the removal, when never seen extra) to revoked."""
        if self.revoked_at is None:
            return None
        start = self.first_seen_at or self.removed_at
        return max(0.0, (self.revoked_at - start).total_seconds())


def leavers(
    removed: Iterable[Revocation],
    synced: Iterable[SyncOutcome],
    auto: bool,
    namespaces: Mapping[str, tuple[str, str]],
    now: datetime,
) -> list[Leaver]:
    """The leavers of one cycle, each email once per audience.

    ``removed`` are the extra members checks found gone (recorded with each check, whatever
    removed them); ``synced`` the cycle's own syncs (``auto``: auto-sync's), whose removals
    name the reason (a
    removal no check saw as extra first still counts, from its removal). ``namespaces``
    gives each audience's (namespace, provider). Whether Vault grants them is decided later.
    """
    why = AUTO_SYNC if auto else SYNC
    ours = {
        (o.audience, email.lower())
        for o in synced
        if o.result is SyncResultKind.SYNCED
        for email in o.removed
    }
    found: dict[tuple[str, str], Leaver] = {}
    for r in removed:
        key = (r.audience, r.email.lower())
        reason = why if key in ours else OBSERVED
        found.setdefault(
            key,
            Leaver(
                r.audience, r.namespace, r.provider, key[1], reason, r.revoked_at, r.first_seen_at
            ),
        )
    for audience, email in sorted(ours - found.keys()):
        if audience in namespaces:
            namespace, provider = namespaces[audience]
            found[(audience, email)] = Leaver(audience, namespace, provider, email, why, now)
    return [leaver for leaver in found.values() if leaver.provider in REVOKING_PROVIDERS]


def unseen_leavers(checks: Iterable[AudienceCheck]) -> list[Leaver]:
    """The leavers no check saw extra (``AudienceCheck.left``): an observed removal, from the
    check that found them gone."""
    return [
        Leaver(
            c.audience.audience,
            c.audience.namespace,
            c.audience.provider,
            email,
            OBSERVED,
            c.checked_at,
        )
        for c in checks
        if c.audience.provider in REVOKING_PROVIDERS
        for email in c.left
    ]


def still_granted(
    leaver_keys: Iterable[tuple[str, str]], granted: Mapping[str, Collection[str]]
) -> set[tuple[str, str]]:
    """The (audience, email) pairs Vault grants now: never revoked."""
    return {(a, e) for a, e in leaver_keys if e in granted.get(a, ())}


def due(
    pending: Iterable[SessionRevocation], members: Mapping[str, int]
) -> list[SessionRevocation]:
    """The pending revocations to send this cycle: oldest first, at most max(5, 10 %) of an
    audience's members per audience (as for removals); the rest go next cycle."""
    sent: dict[str, int] = {}
    chosen = []
    for revocation in sorted(pending, key=lambda r: (r.removed_at, r.id)):
        allowed = removal_allowance(members.get(revocation.audience, 0))
        if sent.get(revocation.audience, 0) + 1 > allowed:
            continue
        sent[revocation.audience] = sent.get(revocation.audience, 0) + 1
        chosen.append(revocation)
    return chosen


@dataclass(frozen=True)
class SessionTotals:
    """What the session metrics show, as persisted (restart-proof)."""

    counts: Mapping[tuple[str, str, str], int]  # (namespace, provider, result) -> count
    access_end: Mapping[tuple[str, str], LatencyTotals]  # by (namespace, provider)
    pending: int = 0


def access_end_bucket(revocation: SessionRevocation) -> tuple[str, float] | None:
    seconds = revocation.access_end_seconds
    return None if seconds is None else (bucket_of(seconds), seconds)
