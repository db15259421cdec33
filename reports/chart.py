"""The digest's chart: how many audiences were in drift / in error at each check cycle."""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reports.history import Period

DRIFT_COLOUR = "#d97706"
ERROR_COLOUR = "#dc2626"


def drift_chart(cycles: pd.DataFrame, period: Period) -> bytes:
    """A PNG of drift and error counts per cycle over the period.

    Full cycles only when there are any: a partial cycle counts only the audiences it
    checked, so its totals would dip. Built on a bare ``Figure`` (no pyplot global state),
    so the exporter's scheduler thread can call it.
    """
    full = cycles[cycles["scope"] == "full"]
    points = (full if not full.empty else cycles).sort_values("started_at")
    figure = Figure(figsize=(8, 2.6), dpi=100)
    axes = figure.subplots()
    if points.empty:
        axes.text(0.5, 0.5, "no check cycles in this period", ha="center", va="center")
    else:
        times = points["started_at"].dt.tz_localize(None)
        axes.step(times, points["drift"], where="post", color=DRIFT_COLOUR, label="in drift")
        axes.step(times, points["error"], where="post", color=ERROR_COLOUR, label="in error")
        axes.fill_between(times, points["drift"], step="post", color=DRIFT_COLOUR, alpha=0.15)
        axes.legend(loc="upper left", frameon=False, fontsize=8)
    axes.set_xlim(date2num(period.start), date2num(period.end))
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    top = int(max(points["drift"].max(), points["error"].max())) if not points.empty else 0
    axes.set_ylim(0, max(top + 1, 2))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("audiences", fontsize=8)
    axes.set_xlabel("time (UTC)", fontsize=8)
    axes.tick_params(labelsize=8)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.subplots_adjust(left=0.07, right=0.98, top=0.95, bottom=0.2)  # fixed: reproducible
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
