from __future__ import annotations

import struct
from pathlib import Path

import pandas as pd
from support.reports import NOW

from exporter.vault import SqliteStore
from reports.chart import drift_chart
from reports.history import load_history, period_ending


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_drift_chart_is_a_png_of_sane_size(history_store: SqliteStore) -> None:
    period = period_ending("7d", NOW)
    history = load_history(history_store, period)
    png = drift_chart(history.cycles, period)
    assert png_size(png) == (800, 260)
    assert 5_000 < len(png) < 300_000


def test_drift_chart_without_cycles_still_renders(history_db: Path) -> None:
    period = period_ending("1d", NOW)
    empty = pd.DataFrame(
        {
            "started_at": pd.Series([], dtype="datetime64[us, UTC]"),
            "scope": pd.Series([], dtype=object),
            "drift": pd.Series([], dtype="int64"),
            "error": pd.Series([], dtype="int64"),
        }
    )
    assert png_size(drift_chart(empty, period)) == (800, 260)
