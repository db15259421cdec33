"""Plain data of the domain: what Vault expects, what Cloudflare has, what a check found.

Nothing here does I/O or reads the clock; times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from exporter.core.times import format_time

Rule = dict[str, Any]
"""A Cloudflare Access rule: a one-key object such as ``{"email": {"email": "a@x.com"}}``."""


class Status(StrEnum):
    PENDING = "pending"
    SYNCED = "synced"
    DRIFT = "drift"
    ERROR = "error"


class AlertLevel(StrEnum):
    NONE = "none"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Side(StrEnum):
    """The two sides of a drift: in Vault but not in Cloudflare (``missing``: an outage), or
    in Cloudflare but not in Vault (``extra``: an exposure). The value is what the API, the
    metrics' labels and the store spell."""

    MISSING = "missing"
    EXTRA = "extra"


MemberKey = tuple[Side, str]
"""A drifting member in the memory: (its side, its email)."""


class AutoSync(StrEnum):
    OFF = "off"
    ADD_ONLY = "add_only"
    REMOVE_ONLY = "remove_only"
    FULL = "full"


class SyncResultKind(StrEnum):
    SYNCED = "synced"
    NOOP = "noop"
    BLOCKED = "blocked"
    ERROR = "error"


@dataclass(frozen=True)
class Audience:
    """One row of ``sys_infra_state``: an audience the exporter checks."""

    audience: str
    namespace: str
    provider: str
    group_id: str | None
    last_sync_at: datetime | None = None


@dataclass(frozen=True)
class Expected:
    """Vault's side of one audience; ``error`` set when it could not be read completely.

    ``members`` maps each lowercased email to the earliest ``iam_user_group.created_at``
    granting it ("added in Vault"), kept as Vault's text and parsed only when shown.
    """

    members: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Group:
    """A Cloudflare Access group, rules kept verbatim."""

    id: str
    name: str
    include: list[Rule]
    exclude: list[Rule] = field(default_factory=list)
    require: list[Rule] = field(default_factory=list)
    # Only a boolean as read is kept (the spec's response type for it is wrong): a PUT must
    # send it back, or it may clear the flag of a default group.
    is_default: bool | None = None


@dataclass(frozen=True)
class OtherRule:
    """A rule that names no member: any rule of ``exclude`` or ``require``, or a non-email
    rule of ``include``; ``list_name`` says which list it is in. Never changed by a sync."""

    list_name: str  # include | exclude | require
    rule: Rule


@dataclass(frozen=True)
class Actual:
    """Cloudflare's side of one audience; ``error`` set when it could not be read completely.

    ``emails``, when given, are the addresses of the include list's email rules already
    extracted, and ``group``'s include may then carry only its non-email rules (a full check
    keeps 1,000 x 1,000 rules compact). Members are those emails minus the excluded ones.
    """

    group: Group | None = None
    error: str | None = None
    emails: frozenset[str] | None = None
    # The provider's users, when a member must be one (AWS): a missing member without one is
    # "no AWS user with this email". None where any address can be added (Cloudflare).
    accounts: frozenset[str] | None = None


@dataclass(frozen=True)
class ChangedBy:
    """The audit-log entry that explains a drifting member (``changed_by`` in the API)."""

    actor: str  # an email, "vault-api" or "vault-drift"
    actor_type: str | None  # Cloudflare's actor.type as read ("user", "admin", ...)
    interface: str  # dashboard | api | what Cloudflare said, lowercased | unknown
    at: datetime
    audit_log_id: str
    source: str = "manual"  # manual | vault-api | exporter

    def as_document(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "actor_type": self.actor_type,
            "interface": self.interface,
            "at": format_time(self.at),
            "audit_log_id": self.audit_log_id,
            "source": self.source,
        }


@dataclass(frozen=True)
class Attribution:
    """What Cloudflare's audit log says about one drifting member (``core/attribution.py``):
    ``pending`` | ``found`` | ``not_found`` | ``vault`` | ``expired``."""

    outcome: str
    since: datetime | None = None  # pending: the last check that saw both sides before
    changed_by: ChangedBy | None = None


@dataclass(frozen=True)
class DriftMember:
    email: str
    kind: Side
    first_seen_at: datetime
    added_in_vault_at: datetime | None = None
    # What the group's other rules say about a missing member's access in Cloudflare.
    excluded: bool = False  # an email rule of exclude names them: no access, whatever include says
    domain_rule: str | None = None  # an email_domain include rule gives them access anyway
    no_account: bool = False  # the provider has no user with this email (AWS): no sync adds it
    # What Cloudflare's audit log says about who made it drift (None: nothing known yet).
    attribution: Attribution | None = None


@dataclass(frozen=True)
class MemberSeconds:
    """Member-seconds per side: for each member, the seconds it has been missing (extra)."""

    missing: float = 0.0
    extra: float = 0.0

    def of(self, kind: Side) -> float:
        return self.extra if kind == Side.EXTRA else self.missing


@dataclass(frozen=True)
class DriftMemory:
    """What persists between checks: when the episode and each side started, when each member
    was first seen, and the member-seconds of members that stopped drifting.

    ``drift_since`` is the start of the episode, so the earlier of ``missing_since`` and
    ``extra_since`` (or earlier still, once the side that opened the episode has closed).
    ``observed_at`` is the last check that read both sides: the members drifting now count
    from their first-seen time up to it, so that the exposure counters stand still while
    checks fail, and a restart neither resets nor jumps them.
    """

    drift_since: datetime | None = None
    first_seen: dict[MemberKey, datetime] = field(default_factory=dict)  # (kind, email)
    consecutive_errors: int = 0
    error_since: datetime | None = None
    notes: dict[MemberKey, str] = field(default_factory=dict)  # (kind, email): access note
    missing_since: datetime | None = None
    extra_since: datetime | None = None
    observed_at: datetime | None = None
    closed: MemberSeconds = field(default_factory=MemberSeconds)
    # (kind, email): what the audit log says about a drifting member (persisted with it)
    attributions: dict[MemberKey, Attribution] = field(default_factory=dict)


@dataclass(frozen=True)
class Revocation:
    """An extra member that stopped being extra, whatever removed it: a sync, auto-sync, a
    manual edit, or Vault granting it again. Seen once, by the check that found it gone."""

    audience: str
    namespace: str
    provider: str
    email: str
    first_seen_at: datetime
    revoked_at: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, (self.revoked_at - self.first_seen_at).total_seconds())


@dataclass(frozen=True)
class Ignore:
    until: datetime
    reason: str
    created_by: str = ""


@dataclass(frozen=True)
class AudienceCheck:
    """The outcome of checking one audience at one instant."""

    audience: Audience
    status: Status
    checked_at: datetime
    expected_count: int
    actual_count: int
    missing: tuple[DriftMember, ...] = ()
    extra: tuple[DriftMember, ...] = ()
    other_rules: tuple[OtherRule, ...] = ()
    error_message: str | None = None
    memory: DriftMemory = field(default_factory=DriftMemory)
    revoked: tuple[Revocation, ...] = ()  # extra at the previous check, gone at this one
    # members that differ on a side an exemption in force covers: not drift (core/exemptions.py)
    exempt: frozenset[MemberKey] = frozenset()  # (side, email)
    # Session revocation (README, "Effective removal"), kept in memory only: ``held`` the
    # members Vault granted that the group had (packed, core/packed.py); ``left`` those the
    # previous check held that are gone now and no longer granted, never seen extra (a
    # vault-api push between two checks).
    held: str | None = None
    left: tuple[str, ...] = ()

    @property
    def drift_since(self) -> datetime | None:
        return self.memory.drift_since if self.status is Status.DRIFT else None

    @property
    def missing_since(self) -> datetime | None:
        return self.memory.missing_since if self.status is Status.DRIFT else None

    @property
    def extra_since(self) -> datetime | None:
        return self.memory.extra_since if self.status is Status.DRIFT else None


@dataclass(frozen=True)
class SyncPlan:
    """What a sync would send; ``blocked`` carries a guard's reason when it must not be sent."""

    audience: str
    group: Group
    new_include: list[Rule]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    blocked: str | None = None  # bounded code: empty_source | mass_removal | rule_limit
    blocked_detail: str | None = None
    excluded: tuple[str, ...] = ()  # expected members an exclude rule names: no sync fixes them
    not_addresses: tuple[str, ...] = ()  # expected "emails" Cloudflare would refuse: never sent
    # expected members the provider has no user for (AWS: users come from SCIM): never created
    no_account: tuple[str, ...] = ()

    @property
    def is_noop(self) -> bool:
        return not self.added and not self.removed


@dataclass(frozen=True)
class SyncOutcome:
    audience: str
    result: SyncResultKind
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    reason: str | None = None
    blocked_reason: str | None = None  # the guard's code: empty_source | mass_removal | rule_limit
    # removed members whose Access sessions Cloudflare confirmed ended after this sync
    revoked: tuple[str, ...] = ()

    def as_document(self) -> dict[str, Any]:
        return {
            "audience": self.audience,
            "result": str(self.result),
            "added": list(self.added),
            "removed": list(self.removed),
            "reason": self.reason,
            "blocked_reason": self.blocked_reason,
            "revoked": list(self.revoked),
        }
