"""The digest's exemptions: made and ended within the period, and ending within 7 days of
its end (docs/exemptions.md). Pure: frames in, plain data out."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from exporter.core.exemptions import EXPIRING_WITHIN
from reports.history import Period


@dataclass(frozen=True)
class ExemptionLine:
    audience: str
    email: str
    side: str
    reason: str
    owner: str
    expires_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None  # deleted | expired | replaced


@dataclass(frozen=True)
class Exemptions:
    made: list[ExemptionLine] = field(default_factory=list)
    ended: list[ExemptionLine] = field(default_factory=list)
    ending_soon: list[ExemptionLine] = field(default_factory=list)  # soonest first

    @property
    def any(self) -> bool:
        return bool(self.made or self.ended or self.ending_soon)


def exemption_summary(rows: pd.DataFrame, period: Period) -> Exemptions:
    if rows.empty:
        return Exemptions()
    lines = [(_line(row), row) for row in rows.to_dict("records")]
    soon = period.end + EXPIRING_WITHIN
    return Exemptions(
        made=[line for line, row in lines if period.start <= row["created_at"] <= period.end],
        ended=[
            line
            for line, row in lines
            if line.ended_at is not None and period.start <= line.ended_at <= period.end
        ],
        ending_soon=sorted(
            (
                line
                for line, _ in lines
                if line.ended_at is None and period.end < line.expires_at <= soon
            ),
            key=lambda line: (line.expires_at, line.audience, line.email),
        ),
    )


def _line(row: Mapping[Hashable, Any]) -> ExemptionLine:
    ended = row["ended_at"]
    ended_at = None if pd.isna(ended) else ended.to_pydatetime()
    expires = row["expires_at"].to_pydatetime()
    if row["end_reason"] == "expired" and ended_at is not None:
        ended_at = min(ended_at, expires)
    return ExemptionLine(
        audience=str(row["audience"]),
        email=str(row["email"]),
        side=str(row["side"]),
        reason=str(row["reason"]),
        owner=str(row["owner"]),
        expires_at=expires,
        ended_at=ended_at,
        ended_by=None if pd.isna(row["ended_by"]) else str(row["ended_by"]),
        end_reason=None if pd.isna(row["end_reason"]) else str(row["end_reason"]),
    )
