"""The mail log (``sys_infra_drift_mail`` through the store): one record per attempt, so
nothing is sent twice; what it says about the digests (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from exporter.vault.store import MailRecord, VaultStore

OnMail = Callable[[str, str], None]
"""Told of every mail attempt: (kind, result); the exporter passes its sent / failed counter."""


def ignore_mail(kind: str, result: str) -> None:
    """The default ``OnMail``: nobody is counting."""


@dataclass(frozen=True)
class MailAttempt:
    kind: str  # digest | critical | resolved
    result: str  # sent | failed
    episode_id: int | None = None
    audience: str | None = None
    detail: str | None = None


def record_attempt(store: VaultStore, at: datetime, attempt: MailAttempt, recipients: int) -> None:
    store.record_mail(
        MailRecord(at, attempt.kind, attempt.result, recipients, attempt.episode_id, attempt.detail)
    )


def last_digest_sent_at(log: Iterable[MailRecord]) -> datetime | None:
    """When the last digest mail went out, if one did."""
    sent = [record.at for record in log if record.kind == "digest" and record.result == "sent"]
    return max(sent, default=None)


def scheduled_digest_sent_since(log: Iterable[MailRecord], since: datetime) -> bool:
    """Whether a scheduled digest went out at or after ``since``."""
    return any(
        record.kind == "digest"
        and record.result == "sent"
        and (record.detail or "").startswith("scheduled")
        and record.at >= since
        for record in log
    )
