"""What both Vault backends share: every read and write that is only SQL as data.

A backend says how to run a read function (``_read``: a sqlite3 connection, or D1's ``/raw``)
and how to apply a write's statements atomically (``_write``: one transaction, or one D1
``batch``); the methods below turn each store call into those. What differs between the
backends (the membership pages, the check cycle's batches, the change feed, the writer
lease) stays in ``sqlite.py`` and ``d1.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from exporter.core.attribution import Coverage, GroupChange, OwnWrite
from exporter.core.exemptions import Exemption
from exporter.core.exposure import LatencyTotals
from exporter.core.model import Ignore, Revocation
from exporter.core.sessions import Leaver, SessionRevocation, SessionTotals
from exporter.core.settings import Settings
from exporter.core.webhooks import OutboxEntry
from exporter.vault import (
    attribution,
    decisions,
    exemptions,
    exposure,
    history,
    reporting,
    sessions,
    state,
)
from exporter.vault import outbox as webhook_outbox
from exporter.vault.sql import Outcome, Reader, Statement
from exporter.vault.store import (
    AudienceHistory,
    AuditRow,
    CheckRecord,
    EpisodeRecord,
    MailRecord,
    PendingEvent,
    PeriodHistory,
)

T = TypeVar("T")


class StatementStore(ABC):
    @abstractmethod
    def _read(self, read: Callable[[Reader], T]) -> T:
        """Run a read function (VaultError when the Vault cannot be read)."""

    @abstractmethod
    def _write(self, statements: Sequence[Statement]) -> list[Outcome]:
        """Apply one write's statements, all of them or none (VaultError otherwise)."""

    def settings(self) -> Settings:
        return self._read(decisions.load_settings)

    def ignores(self) -> dict[str, Ignore]:
        return self._read(decisions.load_ignores)

    def audit(
        self, audience: str | None = None, *, result: str | None = None, limit: int = 20
    ) -> list[AuditRow]:
        return self._read(lambda conn: decisions.audit_rows(conn, audience, limit, result))

    def exemptions(self, ended_since: datetime | None = None) -> dict[str, tuple[Exemption, ...]]:
        return self._read(lambda conn: exemptions.load_exemptions(conn, ended_since))

    def exemption_log(self, audience: str | None = None, limit: int = 50) -> list[Exemption]:
        return self._read(lambda conn: exemptions.exemption_log(conn, audience, limit))

    def exemptions_between(self, start: datetime, end: datetime) -> list[Exemption]:
        return self._read(lambda conn: exemptions.made_or_ended(conn, start, end))

    def history(self, audience: str) -> AudienceHistory:
        def read(conn: Reader) -> AudienceHistory:
            return AudienceHistory(
                history.recent_episodes(conn, audience),
                decisions.audit_rows(conn, audience, limit=20),
                sessions.recent(conn, audience, 20),
            )

        return self._read(read)

    def revocation_totals(self) -> dict[tuple[str, str], LatencyTotals]:
        return self._read(exposure.revocation_totals)

    def attribution_cache(
        self, group_ids: Collection[str], since: datetime
    ) -> tuple[dict[str, Coverage], list[GroupChange]]:
        return self._read(lambda conn: attribution.cached(conn, group_ids, since))

    def manual_change_counts(self) -> dict[str, int]:
        return self._read(attribution.manual_counts)

    def own_writes(self, since: datetime) -> list[OwnWrite]:
        return self._read(lambda conn: attribution.own_writes(conn, since))

    def period_history(self, start: datetime, end: datetime) -> PeriodHistory:
        return self._read(lambda conn: reporting.period_history(conn, start, end))

    def mail_log(self, kind: str | None = None) -> list[MailRecord]:
        return self._read(lambda conn: reporting.mail_log(conn, kind))

    def episodes_awaiting_critical_mail(self) -> list[EpisodeRecord]:
        return self._read(reporting.episodes_awaiting_critical_mail)

    def episodes_awaiting_resolution_note(self) -> list[EpisodeRecord]:
        return self._read(reporting.episodes_awaiting_resolution_note)

    def save_settings(self, settings: Settings) -> None:
        self._write(decisions.save_settings(settings))

    def set_ignore(self, audience: str, ignore: Ignore, now: datetime) -> None:
        self._write([decisions.set_ignore(audience, ignore, now)])

    def clear_ignore(self, audience: str) -> bool:
        return self._write([decisions.clear_ignore(audience)])[0].changes > 0

    def add_exemption(self, exemption: Exemption) -> None:
        self._write(exemptions.add_exemption(exemption))

    def end_exemption(self, audience: str, email: str, at: datetime, by: str, how: str) -> bool:
        statement = exemptions.end_exemption(audience, email, at, by, how)
        return self._write([statement])[0].changes > 0

    def finish_audit(
        self,
        audit_id: int,
        result: str,
        reason: str | None,
        now: datetime,
        outbox: Sequence[OutboxEntry] = (),
    ) -> None:
        self._write(
            [decisions.finish_audit(audit_id, result, reason, now), *webhook_outbox.enqueue(outbox)]
        )

    def record_group(
        self,
        audience: str,
        group_id: str,
        audit_id: int,
        now: datetime,
        resource_type: str = "access_group",
    ) -> None:
        self._write(
            [
                state.set_group_id(audience, group_id, now, resource_type),
                decisions.finish_audit(audit_id, "synced", None, now, group_id=group_id),
            ]
        )

    def record_mail(self, record: MailRecord) -> None:
        self._write([reporting.record_mail(record)])

    def mark_episode_mailed(self, episode_id: int, kind: str, at: datetime) -> None:
        self._write([reporting.mark_episode_mailed(episode_id, kind, at)])

    def outbox(self, limit: int) -> tuple[list[PendingEvent], int]:
        return self._read(
            lambda conn: (webhook_outbox.pending(conn, limit), webhook_outbox.size(conn))
        )

    def remove_outbox(self, row_ids: Sequence[int]) -> None:
        if row_ids:
            self._write(webhook_outbox.remove(row_ids))

    # -- session revocation (README, "Effective removal") --------------------------------

    def removed_since_cursor(self) -> tuple[list[Revocation], int]:
        return self._read(sessions.removed_since_cursor)

    def queue_revocations(self, leavers: Collection[Leaver], cursor: int) -> None:
        self._write(sessions.queue(leavers, cursor))

    def pending_revocations(self) -> list[SessionRevocation]:
        return self._read(sessions.pending)

    def session_revocations(
        self, audience: str | None = None, limit: int = 20
    ) -> list[SessionRevocation]:
        return self._read(lambda conn: sessions.recent(conn, audience, limit))

    def finish_revocations(
        self,
        results: Sequence[tuple[SessionRevocation, str, str | None]],
        at: datetime,
        outbox: Sequence[OutboxEntry] = (),
    ) -> None:
        statements = [
            statement
            for revocation, result, error in results
            for statement in sessions.finish(revocation, result, error, at)
        ]
        if outbox:
            statements += webhook_outbox.enqueue(outbox)
        if statements:
            self._write(statements)

    def session_totals(self) -> SessionTotals:
        return self._read(sessions.totals)

    def record_group_changes(
        self, changes: Collection[GroupChange], coverage: Mapping[str, Coverage]
    ) -> None:
        statements = attribution.record(changes, coverage)
        if statements:
            self._write(statements)


def check_statements(record: CheckRecord) -> list[Statement]:
    """Everything a check leaves behind, in order; the cycle's own record comes last."""
    return [statement for unit in check_units(record) for statement in unit]


def check_units(record: CheckRecord) -> list[list[Statement]]:
    """``check_statements`` cut into consistent units: one per audience (its status with its
    companion rows), then the removals and the pruning, then the cycle's record alone."""
    units = state.record_checks(
        record.checks, dict(record.previous), record.at, record.closed_by_sync
    )
    if record.synced_at is not None:
        for unit, check in zip(units, record.checks, strict=True):
            unit.append(state.record_sync_time(check.audience.audience, record.synced_at))
    _with_events(units, record)
    tail: list[Statement] = []
    if record.present is not None:
        tail += state.forget_removed(record.at)
    if record.prune_before is not None:
        tail += state.prune_history(record.prune_before)
    if tail:
        units.append(tail)
    if record.cycle is not None:
        units.append([state.record_cycle(record.cycle)])
    return units


def _with_events(units: list[list[Statement]], record: CheckRecord) -> None:
    """Each webhook event goes in its audience's unit: it commits with the state that caused
    it, or not at all. An event of an audience these checks did not touch gets its own unit."""
    by_audience = {c.audience.audience: u for c, u in zip(record.checks, units, strict=True)}
    loose = []
    for entry in record.outbox:
        unit = by_audience.get(entry.audience)
        if unit is None:
            loose.append(entry)
        else:
            unit += webhook_outbox.enqueue([entry])
    if loose:
        units.append(webhook_outbox.enqueue(loose))
