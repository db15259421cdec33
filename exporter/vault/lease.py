"""The writer lease of a D1 Vault as statements: one row in ``sys_infra_drift_lease``.

Two exporters on one D1 database never both write: ``serve`` takes the lease with a
compare-and-set, renews it every third of its length and gives it back on exit; writes stop
a third of the lease before it could run out (docs/design.md, "One writer").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from exporter.core.times import format_time
from exporter.vault.db import companion_ddl
from exporter.vault.store import VaultError

NAME = "writer"

HOLDER: tuple[str, Sequence[Any]] = (
    "SELECT holder, expires_at FROM sys_infra_drift_lease WHERE name = ?",
    (NAME,),
)


class LeaseHeld(VaultError):
    """Another process holds the writer lease of this D1 database."""

    def __init__(self, holder: str, expires_at: str) -> None:
        super().__init__(
            f"another vault-drift serve holds this D1 database (holder {holder},"
            f" lease expires at {expires_at})"
        )
        self.holder, self.expires_at = holder, expires_at


@dataclass
class Lease:
    holder: str
    ttl: float
    valid_until: float = 0.0  # monotonic: writes stop here unless a renewal moved it


def table() -> tuple[str, Sequence[Any]]:
    """The lease's table (IF NOT EXISTS): it must exist before the race for the lease, and
    the rest of the schema is migrated by the winner only."""
    [ddl] = [s for s in companion_ddl() if "sys_infra_drift_lease (" in s]
    return ddl, ()


def take(holder: str, now: datetime, ttl: float) -> list[tuple[str, Sequence[Any]]]:
    """Create the table if need be, insert the row if there is none, take it over if it is
    ours or expired, read it back: the last statement's row names who holds it now."""
    expires, at = format_time(now + timedelta(seconds=ttl)), format_time(now)
    return [
        table(),
        (
            "INSERT OR IGNORE INTO sys_infra_drift_lease (name, holder, acquired_at,"
            " expires_at) VALUES (?, ?, ?, ?)",
            [NAME, holder, at, expires],
        ),
        (
            "UPDATE sys_infra_drift_lease SET holder = ?, acquired_at = ?,"
            " expires_at = ? WHERE name = ? AND (holder = ? OR expires_at < ?)",
            [holder, at, expires, NAME, holder, at],
        ),
        HOLDER,
    ]


def renew(lease: Lease, now: datetime) -> tuple[str, Sequence[Any]]:
    """Compare-and-set: changes one row only while the lease is still ours."""
    expires = format_time(now + timedelta(seconds=lease.ttl))
    return (
        "UPDATE sys_infra_drift_lease SET expires_at = ? WHERE name = ? AND holder = ?",
        [expires, NAME, lease.holder],
    )


def release(lease: Lease) -> tuple[str, Sequence[Any]]:
    return (
        "DELETE FROM sys_infra_drift_lease WHERE name = ? AND holder = ?",
        [NAME, lease.holder],
    )
