"""The exporter-wide families: the last cycle, the sources, the Cloudflare client, the build."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.cloudflare.ratelimit import StatsSnapshot
from exporter.core.snapshot import Snapshot


class HealthCollector(Collector):
    """The exporter-wide families: last cycle, sources, Cloudflare client, build."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        cloudflare_stats: Callable[[], StatsSnapshot],
        monotonic: Callable[[], float] = time.monotonic,
        interval: Callable[[], int] | None = None,
    ) -> None:
        self._snapshot = snapshot
        # Seconds between full listings (the change feed's safety net while it is healthy).
        self._interval = interval
        self._cloudflare_stats = cloudflare_stats
        self._monotonic = monotonic

    def _pausing(self, stats: StatsSnapshot) -> bool:
        """The client's pause is still running (its end may lie in the past)."""
        until = stats.paused_until
        return until is not None and until > self._monotonic()

    def collect(self) -> Iterator[Metric]:
        yield from self._cycle_families(self._snapshot())
        yield from self._cloudflare_families(self._cloudflare_stats())
        yield build_info()

    def _cycle_families(self, snapshot: Snapshot) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "vault_drift_last_check_success_timestamp_seconds",
            "Last check cycle whose Vault read and Cloudflare listing both completed",
        )
        if snapshot.last_success_at is not None:
            success.add_metric([], snapshot.last_success_at.timestamp())
        yield success
        yield GaugeMetricFamily(
            "vault_drift_check_interval_seconds",
            "Current interval between background checks",
            value=self._interval() if self._interval else snapshot.settings.check_interval_seconds,
        )
        up = GaugeMetricFamily(
            "vault_drift_source_up", "1 if the last read of the source worked", labels=["source"]
        )
        for source, state in (
            ("vault", snapshot.vault_up),
            ("cloudflare_access", snapshot.cloudflare_up),
            *sorted(snapshot.providers_up.items()),
        ):
            if state is not None:
                up.add_metric([source], 1 if state else 0)
        yield up
        if snapshot.attribution_up is not None:
            yield GaugeMetricFamily(
                "vault_drift_attribution_up",
                "1 while Cloudflare's audit log can be read to say who changed drifting"
                " members; 0 once the token was refused it (403) or the last read failed",
                value=1 if snapshot.attribution_up else 0,
            )

    def _cloudflare_families(self, stats: StatsSnapshot) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "vault_drift_cloudflare_requests",
            "HTTP requests sent to Cloudflare, by API (access, audit, d1), method and status class",
            labels=["api", "method", "status_class"],
        )
        d1 = stats.d1
        for api, tally in (("access", stats.requests), ("audit", stats.audit)):
            for (method, status_class), count in sorted(tally.items()):
                requests.add_metric([api, method, status_class], count)
        for (method, status_class), count in sorted((d1.requests if d1 else {}).items()):
            requests.add_metric(["d1", method, status_class], count)
        yield requests
        if d1 is not None:
            yield CounterMetricFamily(
                "vault_drift_d1_rows_read",
                "Rows D1 read for the exporter (meta.rows_read of its answers; D1 bills them)",
                value=d1.rows_read,
            )
            yield CounterMetricFamily(
                "vault_drift_d1_rows_written",
                "Rows D1 wrote for the exporter (meta.rows_written of its answers)",
                value=d1.rows_written,
            )
            yield CounterMetricFamily(
                "vault_drift_d1_request_seconds",
                "Time spent waiting for D1's answers (reads and writes of the Vault)",
                value=round(d1.seconds, 6),
            )
        yield CounterMetricFamily(
            "vault_drift_cloudflare_rate_limited",
            "429 answers received from Cloudflare",
            value=stats.rate_limited_total,
        )
        if stats.rate_limit_remaining is not None:
            yield GaugeMetricFamily(
                "vault_drift_cloudflare_rate_limit_remaining",
                "Requests left in Cloudflare's current rate-limit window (Ratelimit header)",
                value=stats.rate_limit_remaining,
            )
        paused = stats.paused_until_wall
        yield GaugeMetricFamily(
            "vault_drift_cloudflare_paused_until_timestamp_seconds",
            "While Cloudflare calls are paused after a 429: when they resume; 0 otherwise",
            value=paused if paused is not None and self._pausing(stats) else 0,
        )


def build_info() -> Metric:
    return InfoMetricFamily("vault_drift_build", "vault-drift build", {"version": __version__})


class LeaderCollector(Collector):
    """``vault_drift_leader``: 1 in the replica that holds the Vault (lease or lock file) and
    checks, 0 in a standby (README, "High availability")."""

    def __init__(self, leader: bool) -> None:
        self.leader = leader

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "vault_drift_leader",
            "1 while this replica holds the Vault's writer lease and checks; 0 in a standby",
            value=1 if self.leader else 0,
        )


class StandbyCollector(Collector):
    """What a standby exports besides the process series: the lease and the build."""

    def collect(self) -> Iterator[Metric]:
        yield from LeaderCollector(leader=False).collect()
        yield build_info()
