"""vault-drift's history, read through the Vault store into pandas frames.

The exporter writes the companion tables (``exporter/sql/companion.sql``); reports read them
through the store (:meth:`VaultStore.period_history`). Every time column comes back as a
``datetime64[..., UTC]`` column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from exporter.core.settings import Settings
from exporter.vault.store import Rows, VaultStore
from reports.mail_log import last_digest_sent_at

PERIODS = {"1d": timedelta(days=1), "7d": timedelta(days=7)}


class UnknownPeriod(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime
    end: datetime


def period_ending(label: str, now: datetime) -> Period:
    if label not in PERIODS:
        raise UnknownPeriod(f"unknown period {label!r}: use one of {', '.join(PERIODS)}")
    return Period(label, now - PERIODS[label], now)


@dataclass(frozen=True)
class History:
    """What a digest is computed from: the period's history and the state at its end."""

    period: Period
    state: pd.DataFrame  # one row per audience of sys_infra_state, with drift_since/episode_id
    members: pd.DataFrame  # audience, kind, email, first_seen_at, note: the current drift
    episodes: pd.DataFrame  # episodes overlapping the period
    cycles: pd.DataFrame  # check cycles started in the period
    errors: pd.DataFrame  # errors recorded in the period
    syncs: pd.DataFrame  # audit rows started in the period
    settings: Settings
    last_digest_at: datetime | None  # the last digest mail that went out
    # extra members found gone, whose time extra overlaps the period (the exposure's history)
    revocations: pd.DataFrame
    # exemptions made or ended in the period, and those still open (docs/exemptions.md)
    exemptions: pd.DataFrame = field(default_factory=pd.DataFrame)
    # session revocations ended in the period, and those pending (README, "Effective removal")
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)


def load_history(store: VaultStore, period: Period) -> History:
    """The period's frames, the settings and the last digest sent (VaultError if unreadable)."""
    rows = store.period_history(period.start, period.end)
    return History(
        period=period,
        state=frame(rows.state),
        members=frame(rows.members),
        episodes=frame(rows.episodes),
        cycles=frame(rows.cycles),
        errors=frame(rows.errors),
        syncs=frame(rows.syncs),
        revocations=frame(rows.revocations),
        exemptions=frame(rows.exemptions),
        sessions=frame(rows.sessions),
        settings=store.settings(),
        last_digest_at=last_digest_sent_at(store.mail_log("digest")),
    )


def frame(rows: Rows) -> pd.DataFrame:
    """The rows as a frame; their time columns as ``datetime64[..., UTC]``."""
    result = pd.DataFrame.from_records(rows.rows, columns=list(rows.columns))
    for column in rows.times:
        result[column] = pd.to_datetime(result[column], utc=True)
    return result
