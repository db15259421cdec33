"""The Vault store: the only package that speaks SQL (reads vault-api's iam_* tables, owns ours)."""

from exporter.vault.sqlite import SqliteStore
from exporter.vault.store import (
    AuditEntry,
    CheckRecord,
    CycleSummary,
    EpisodeRecord,
    MailRecord,
    PeriodHistory,
    Rows,
    VaultError,
    VaultStore,
)

__all__ = [
    "AuditEntry",
    "CheckRecord",
    "CycleSummary",
    "EpisodeRecord",
    "MailRecord",
    "PeriodHistory",
    "Rows",
    "SqliteStore",
    "VaultError",
    "VaultStore",
]
