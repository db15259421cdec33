"""The seam to the Vault database: everything the exporter reads from it or writes to it.

The services see only this interface, never a connection or SQL. Each write method is one
atomic unit (the SQLite backend runs it in one transaction; a backend over HTTP sends it as
one batch), and no transaction is held open across calls.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypedDict

from exporter.core.attribution import Coverage, GroupChange, OwnWrite
from exporter.core.exemptions import Exemption
from exporter.core.exposure import LatencyTotals
from exporter.core.model import (
    Audience,
    AudienceCheck,
    DriftMemory,
    Expected,
    Ignore,
    Revocation,
)
from exporter.core.sessions import Leaver, SessionRevocation, SessionTotals
from exporter.core.settings import Settings
from exporter.core.webhooks import OutboxEntry


class VaultError(Exception):
    """The Vault database cannot be used: missing, corrupt, read-only or without its tables,
    unreachable (D1), or its writer lease lost. Every error of the store is one of these; the
    web layer answers them 503 "vault unavailable"."""


class VaultIncomplete(VaultError):
    """Vault's members of an audience cannot be read completely: nothing is pushed."""


class AuditRow(TypedDict):
    """One row of the sync audit, as the store reads it back."""

    id: int
    started_at: str
    finished_at: str | None
    audience: str
    action: str  # sync | create_group
    trigger: str  # api | page | cli | auto
    actor: str
    mode: str  # full | add_only | remove_only
    forced: bool
    group_id: str | None
    added: list[str]
    removed: list[str]
    added_count: int
    removed_count: int
    result: str  # in_progress | synced | noop | blocked | error
    reason: str | None


@dataclass(frozen=True)
class CycleSummary:
    """The history row of one check cycle."""

    started_at: datetime
    finished_at: datetime
    trigger: str
    scope: str  # full | partial
    vault_ok: bool
    cloudflare_ok: bool
    counts: dict[str, int]


@dataclass(frozen=True)
class CheckRecord:
    """What one check (or the re-check after a sync) leaves behind, written as one unit."""

    checks: list[AudienceCheck]
    previous: Mapping[str, DriftMemory]  # the memories the checks were evaluated against
    at: datetime
    closed_by_sync: str | None = None  # the actor, when these checks follow our own sync
    present: list[str] | None = None  # a full check: every audience; the others are forgotten
    cycle: CycleSummary | None = None
    prune_before: datetime | None = None  # drop closed history older than this
    synced_at: datetime | None = None  # a sync's re-check: its audiences' last successful sync
    # webhook events these checks caused, written with their audience's unit (docs/webhooks.md)
    outbox: tuple[OutboxEntry, ...] = ()


@dataclass(frozen=True)
class AuditEntry:
    """One sync or group creation, recorded before anything is sent to Cloudflare."""

    audience: str
    action: str  # sync | create_group
    trigger: str  # api | page | cli | auto
    actor: str
    mode: str = "full"
    forced: bool = False
    group_id: str | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class AudienceHistory:
    """An audience's recent drift episodes and syncs, for its detailed view."""

    episodes: list[dict[str, Any]] = field(default_factory=list)
    syncs: list[AuditRow] = field(default_factory=list)
    revocations: list[SessionRevocation] = field(default_factory=list)  # newest first


@dataclass(frozen=True)
class Rows:
    """A table as read: column names, one tuple per row; the ``times`` columns hold aware
    datetimes (or None), every other value is as stored."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    times: frozenset[str] = frozenset()


REVOCATION_COLUMNS = (
    "id",
    "audience",
    "namespace",
    "provider",
    "email",
    "first_seen_at",
    "revoked_at",
    "duration_seconds",
)
REVOCATION_TIMES = ("first_seen_at", "revoked_at")
EXEMPTION_COLUMNS = (
    "audience",
    "email",
    "side",
    "reason",
    "owner",
    "created_at",
    "expires_at",
    "ended_at",
    "ended_by",
    "end_reason",
)
EXEMPTION_TIMES = ("created_at", "expires_at", "ended_at")
SESSION_COLUMNS = (
    "id",
    "audience",
    "namespace",
    "provider",
    "email",
    "reason",
    "removed_at",
    "first_seen_at",
    "state",
    "attempts",
    "revoked_at",
    "last_error",
)
SESSION_TIMES = ("removed_at", "first_seen_at", "revoked_at")


@dataclass(frozen=True)
class PeriodHistory:
    """What a report of a period reads: the state now and the history within the period."""

    state: Rows  # one row per audience of sys_infra_state, with its drift state
    members: Rows  # audience, kind, email, first_seen_at, note: the current drift
    episodes: Rows  # episodes overlapping the period
    cycles: Rows  # check cycles started in the period
    errors: Rows  # errors recorded in the period
    syncs: Rows  # audit rows started in the period
    # extra members that stopped being extra, whose time extra overlaps the period
    revocations: Rows = field(
        default_factory=lambda: Rows(REVOCATION_COLUMNS, [], frozenset(REVOCATION_TIMES))
    )
    # exemptions made or ended in the period, and those still open (some end soon)
    exemptions: Rows = field(
        default_factory=lambda: Rows(EXEMPTION_COLUMNS, [], frozenset(EXEMPTION_TIMES))
    )
    # session revocations (README, "Effective removal"): those whose sessions ended in the
    # period, and those still pending
    sessions: Rows = field(
        default_factory=lambda: Rows(SESSION_COLUMNS, [], frozenset(SESSION_TIMES))
    )


@dataclass(frozen=True)
class MailRecord:
    """One mail attempt, kept so that nothing is sent twice across restarts."""

    at: datetime
    kind: str  # digest | critical | resolved
    result: str  # sent | failed
    recipients: int
    episode_id: int | None = None
    detail: str | None = None


@dataclass(frozen=True)
class EpisodeRecord:
    """A drift episode as the mails about it need it."""

    id: int
    audience: str
    namespace: str
    opened_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = None  # sync | external | removed
    closed_by: str | None = None


@dataclass(frozen=True)
class PendingEvent:
    """A webhook outbox row as the delivery worker reads it."""

    row_id: int
    entry: OutboxEntry


class ChangeFeed(Protocol):
    """Tells whether the Vault may have changed since the last call (the watcher polls it)."""

    def changed(self) -> bool: ...
    def forget(self) -> None: ...
    def close(self) -> None: ...


class CheckReads(Protocol):
    """What one check reads from the Vault, asked in the order the check needs it. A backend
    may fetch it all at once when the check starts (D1: one request, where each read would
    be one of Cloudflare's API budget); the SQLite file reads each when asked."""

    def audiences(self) -> list[Audience]: ...
    def settings(self) -> Settings: ...
    def expected_members(self, audiences: Iterable[str]) -> Mapping[str, Expected]: ...
    def memories(self) -> dict[str, DriftMemory]: ...
    def exemptions(self, ended_since: datetime) -> dict[str, tuple[Exemption, ...]]: ...
    def ignores(self) -> dict[str, Ignore]: ...
    def revocation_totals(self) -> dict[tuple[str, str], LatencyTotals]: ...


class VaultStore(Protocol):
    # -- reads --------------------------------------------------------------------------
    # The reads of one check of these audiences (None: all), exemptions ended after
    # ``ended_since`` included.
    def check_reads(
        self, audiences: Collection[str] | None, ended_since: datetime
    ) -> CheckReads: ...
    def audiences(self) -> list[Audience]: ...
    def expected_members(self, audiences: Iterable[str]) -> Mapping[str, Expected]: ...
    def memories(self) -> dict[str, DriftMemory]: ...
    # the revocation histogram's persisted totals, by (namespace, provider)
    def revocation_totals(self) -> dict[tuple[str, str], LatencyTotals]: ...
    def settings(self) -> Settings: ...
    def ignores(self) -> dict[str, Ignore]: ...
    def audit(
        self, audience: str | None = None, *, result: str | None = None, limit: int = 20
    ) -> list[AuditRow]: ...
    def history(self, audience: str) -> AudienceHistory: ...
    def changes(self) -> ChangeFeed: ...

    # -- exemptions (docs/exemptions.md) -------------------------------------------------
    # Per audience: the open ones (expired or not) and those ended after ``ended_since``.
    def exemptions(
        self, ended_since: datetime | None = None
    ) -> dict[str, tuple[Exemption, ...]]: ...
    def exemption_log(self, audience: str | None = None, limit: int = 50) -> list[Exemption]: ...
    def exemptions_between(self, start: datetime, end: datetime) -> list[Exemption]: ...
    # One write: the member's open exemption ends (replaced), this one starts.
    def add_exemption(self, exemption: Exemption) -> None: ...
    # how: deleted | expired (an expired one ends at its end date); False: none was open.
    def end_exemption(self, audience: str, email: str, at: datetime, by: str, how: str) -> bool: ...

    # -- attribution (docs/design.md, "Attribution") -------------------------------------
    # How far the audit log was read for these groups, and their entries from ``since`` on.
    def attribution_cache(
        self, group_ids: Collection[str], since: datetime
    ) -> tuple[dict[str, Coverage], list[GroupChange]]: ...
    def manual_change_counts(self) -> dict[str, int]: ...  # by group id
    def own_writes(self, since: datetime) -> list[OwnWrite]: ...  # our syncs that reached CF

    # -- reads for reports and mail -----------------------------------------------------
    def period_history(self, start: datetime, end: datetime) -> PeriodHistory: ...
    def mail_log(self, kind: str | None = None) -> list[MailRecord]: ...  # oldest first
    # open, critical mail not sent (whether one is due is the snapshot's to say), oldest first
    def episodes_awaiting_critical_mail(self) -> list[EpisodeRecord]: ...
    # closed after their critical mail went out, no resolution note yet, by closing time
    def episodes_awaiting_resolution_note(self) -> list[EpisodeRecord]: ...

    # -- writes: each call is one atomic unit -------------------------------------------
    # Each check's state, members, episode and revocations (rows and histogram) together.
    def record_checks(self, record: CheckRecord) -> None: ...
    def save_settings(self, settings: Settings) -> None: ...
    def set_ignore(self, audience: str, ignore: Ignore, now: datetime) -> None: ...
    def clear_ignore(self, audience: str) -> bool: ...
    def start_audit(self, entry: AuditEntry, now: datetime) -> int: ...
    # ``outbox``: the webhook events of the sync's outcome, written with it
    def finish_audit(
        self,
        audit_id: int,
        result: str,
        reason: str | None,
        now: datetime,
        outbox: Sequence[OutboxEntry] = (),
    ) -> None: ...
    def record_group(
        self,
        audience: str,
        group_id: str,
        audit_id: int,
        now: datetime,
        resource_type: str = "access_group",
    ) -> None: ...
    def record_mail(self, record: MailRecord) -> None: ...
    # One audit-log listing: its entries (each kept once) and how far each group was read.
    def record_group_changes(
        self, changes: Collection[GroupChange], coverage: Mapping[str, Coverage]
    ) -> None: ...
    # -- session revocation (README, "Effective removal") --------------------------------
    # The removals checks recorded since the cursor, and the cursor to move to.
    def removed_since_cursor(self) -> tuple[list[Revocation], int]: ...
    # Leavers as pending revocations (one pending per audience and email), with the cursor.
    def queue_revocations(self, leavers: Collection[Leaver], cursor: int) -> None: ...
    def pending_revocations(self) -> list[SessionRevocation]: ...  # oldest first
    def session_revocations(
        self, audience: str | None = None, limit: int = 20
    ) -> list[SessionRevocation]: ...  # newest first
    # Attempts' outcomes, each (revocation, ok | failed (stays pending) | cancelled (Vault
    # grants it again), error), with the webhook events they cause, as one write.
    def finish_revocations(
        self,
        results: Sequence[tuple[SessionRevocation, str, str | None]],
        at: datetime,
        outbox: Sequence[OutboxEntry] = (),
    ) -> None: ...
    def session_totals(self) -> SessionTotals: ...
    # kind: critical | resolved; an episode keeps its first mark
    def mark_episode_mailed(self, episode_id: int, kind: str, at: datetime) -> None: ...

    # -- the webhook outbox (docs/webhooks.md) ------------------------------------------
    def outbox(self, limit: int) -> tuple[list[PendingEvent], int]: ...  # oldest first; size
    def remove_outbox(self, row_ids: Sequence[int]) -> None: ...  # taken or given up
