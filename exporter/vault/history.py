"""Reading back the drift history the check cycle writes (for the API's audience view)."""

from __future__ import annotations

from typing import Any

from exporter.vault.sql import Reader


def recent_episodes(conn: Reader, audience: str, limit: int = 20) -> list[dict[str, Any]]:
    cursor = conn.execute(
        "SELECT id, opened_at, closed_at, peak_missing, peak_extra, close_reason, closed_by"
        " FROM sys_infra_drift_episode WHERE audience = ? ORDER BY id DESC LIMIT ?",
        (audience, limit),
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]
