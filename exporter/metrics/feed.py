"""The change feed's families (README, "Change feed"): up, lag, entries by source, checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.clock import Clock, utc_now
from exporter.service.feed import SOURCES, FeedStats


class FeedCollector(Collector):
    def __init__(self, stats: Callable[[], FeedStats], clock: Clock = utc_now) -> None:
        self._stats, self._clock = stats, clock

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        if stats.up is not None:
            yield GaugeMetricFamily(
                "vault_drift_feed_up",
                "1 while Cloudflare's audit log is polled for group edits; 0 once refused"
                " (401/403) or after 3 failed polls in a row (absent while the feed is off)",
                value=1 if stats.up else 0,
            )
        if stats.newest_entry_at is not None:
            lag = (self._clock() - stats.newest_entry_at).total_seconds()
            yield GaugeMetricFamily(
                "vault_drift_feed_lag_seconds",
                "Now minus the time of the newest audit-log entry the feed has seen",
                value=max(lag, 0.0),
            )
        entries = CounterMetricFamily(
            "vault_drift_feed_entries",
            "Audit-log entries about the audiences' groups taken by the change feed (each"
            " once), by source: poll or logpush",
            labels=["source"],
        )
        for source in SOURCES:
            entries.add_metric([source], stats.entries.get(source, 0))
        yield entries
        yield CounterMetricFamily(
            "vault_drift_feed_checks",
            "Audience checks the change feed triggered (one GET each, no listing)",
            value=stats.checks,
        )
