"""Exemptions as rows of ``sys_infra_drift_exemption``: each row is also its own audit.

At most one exemption of a member of an audience is open (``ended_at`` NULL): a new one
ends the open one (``replaced``) in the same write. Nothing is deleted: ending a row sets
who ended it, when and how (``deleted`` | ``expired`` | ``replaced``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exporter.core.exemptions import EXPIRED, REPLACED, Exemption
from exporter.core.model import Side
from exporter.core.times import format_time, parse_time
from exporter.vault.sql import Reader, Statement

COLUMNS = (
    "audience, email, side, reason, owner, created_at, expires_at, ended_at, ended_by, end_reason"
)
EXPIRY_ACTOR = "expiry"


def _exemption(row: tuple[Any, ...]) -> Exemption:
    audience, email, side, reason, owner, created, expires, ended, ended_by, end_reason = row
    return Exemption(
        audience=audience,
        email=email,
        side=Side(side),
        reason=reason,
        owner=owner,
        created_at=parse_time(created) or datetime.min,
        expires_at=parse_time(expires) or datetime.min,
        ended_at=parse_time(ended),
        ended_by=ended_by,
        end_reason=end_reason,
    )


def load_exemptions(conn: Reader, ended_since: datetime | None) -> dict[str, tuple[Exemption, ...]]:
    """Per audience: the open exemptions (expired or not), and those ended after
    ``ended_since`` (None: open ones only), by email."""
    query = f"SELECT {COLUMNS} FROM sys_infra_drift_exemption WHERE ended_at IS NULL"
    params: tuple[Any, ...] = ()
    if ended_since is not None:
        query += " OR ended_at > ?"
        params = (format_time(ended_since),)
    found: dict[str, list[Exemption]] = {}
    for row in conn.execute(query + " ORDER BY audience, email, id", params):
        exemption = _exemption(row)
        found.setdefault(exemption.audience, []).append(exemption)
    return {audience: tuple(rows) for audience, rows in found.items()}


def exemption_log(conn: Reader, audience: str | None, limit: int) -> list[Exemption]:
    """The newest exemptions (open or ended), newest first: the exemptions' audit."""
    query = f"SELECT {COLUMNS} FROM sys_infra_drift_exemption"
    params: list[Any] = []
    if audience is not None:
        query += " WHERE audience = ?"
        params.append(audience)
    rows = conn.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit))
    return [_exemption(row) for row in rows]


def made_or_ended(conn: Reader, start: datetime, end: datetime) -> list[Exemption]:
    """Exemptions made or ended within [start, end), oldest first (the digest)."""
    since, until = format_time(start), format_time(end)
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM sys_infra_drift_exemption"
        " WHERE (created_at >= ? AND created_at < ?) OR (ended_at >= ? AND ended_at < ?)"
        " ORDER BY id",
        (since, until, since, until),
    )
    return [_exemption(row) for row in rows]


def add_exemption(exemption: Exemption) -> list[Statement]:
    """End the member's open exemption (replaced by this one), then record this one."""
    return [
        _end(exemption.audience, exemption.email, exemption.created_at, exemption.owner, REPLACED),
        Statement(
            "INSERT INTO sys_infra_drift_exemption (audience, email, side, reason, owner,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                exemption.audience,
                exemption.email,
                str(exemption.side),
                exemption.reason,
                exemption.owner,
                format_time(exemption.created_at),
                format_time(exemption.expires_at),
            ),
        ),
    ]


def end_exemption(audience: str, email: str, at: datetime, by: str, how: str) -> Statement:
    """End the member's open exemption; its ``changes`` say whether there was one."""
    return _end(audience, email, at, by, how)


def _end(audience: str, email: str, at: datetime, by: str, how: str) -> Statement:
    # An expired one ends at its end date, whenever it is marked; a deletion, now.
    ended = "expires_at" if how == EXPIRED else "?"
    params: tuple[Any, ...] = (by, how, audience, email)
    if how != EXPIRED:
        params = (format_time(at), *params)
    return Statement(
        f"UPDATE sys_infra_drift_exemption SET ended_at = {ended}, ended_by = ?, end_reason = ?"
        " WHERE audience = ? AND email = ? AND ended_at IS NULL",
        params,
    )
