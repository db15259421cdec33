"""Idempotency keys of D1 write batches: ``sys_infra_drift_write``.

D1 can commit a batch and lose its answer ("Network connection lost" after the commit, a
timeout, a dropped connection). Each write batch therefore ends with the insert of its own
key into a table whose primary key is that key: sent twice, the second copy fails on the key
and D1 rolls it back whole, so nothing of a batch is ever applied twice. After a failure the
store reads the key back (``LOOKUP``): there, the batch landed; absent, it did not, and
sending it again is safe (docs/reliability.md, "A D1 answer lost after the commit").

The row also keeps what the statement before it did (``changes()``, ``last_insert_rowid()``),
so a write whose answer was lost still learns, say, the id of the audit row it inserted.
Keys begin with their time, so the pruning of old keys walks the primary key only.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from exporter.cloudflare.d1 import D1Error
from exporter.cloudflare.wire import CloudflareError
from exporter.core.times import format_time
from exporter.vault.sql import Outcome, Reader, Statement
from exporter.vault.store import VaultError

RETENTION_SECONDS = 86_400  # a key is read back seconds after its batch: a day is plenty


def new_key(now: datetime) -> str:
    return f"{format_time(now)}/{secrets.token_hex(8)}"


def mark(key: str) -> Statement:
    """The batch's last statement: its key, and the outcome of the statement before it."""
    return Statement(
        "INSERT INTO sys_infra_drift_write (key, changes, row_id)"
        " VALUES (?, changes(), last_insert_rowid())",
        (key,),
    )


def landed(conn: Reader, key: str, statements: int) -> list[Outcome] | None:
    """The outcomes of a batch of ``statements`` whose key is in the ledger (only the last
    one is known: the others count as zero), or None when the batch did not land."""
    row = conn.execute(
        "SELECT changes, row_id FROM sys_infra_drift_write WHERE key = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    changes, row_id = row
    last = Outcome(int(changes or 0), int(row_id) if row_id else None)
    return [Outcome()] * (statements - 1) + [last]


def after_failure(
    conn: Reader, key: str, statements: int, failure: CloudflareError
) -> list[Outcome] | None:
    """``landed``, read after a failed send; VaultError when even that cannot be read."""
    try:
        return landed(conn, key, statements)
    except CloudflareError as exc:
        raise VaultError(
            f"Vault write failed: {failure}; whether it landed is unknown ({exc})"
        ) from exc


def may_work_again(exc: CloudflareError) -> bool:
    """D1 said so (a transient error), or it gave no answer at all (timeout, connection)."""
    return isinstance(exc, D1Error) and (exc.transient or exc.status is None)


def prune(now: datetime) -> Statement:
    """Keys older than a day (their batches were settled long ago)."""
    cutoff = format_time(now - timedelta(seconds=RETENTION_SECONDS))
    return Statement("DELETE FROM sys_infra_drift_write WHERE key < ?", (cutoff,))
