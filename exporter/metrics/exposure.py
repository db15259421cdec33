"""Exposure: the two sides of a drift apart, member-seconds and the revocation histogram."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from exporter.core.exposure import LatencyTotals, member_seconds
from exporter.core.model import AudienceCheck, Side
from exporter.core.snapshot import Snapshot
from exporter.metrics.families import FROM_LAST_CHECK, LABELS, StateSets

SIDES = tuple(Side)


class ExposureSides:
    """The two sides of a drift, apart: when each started, which one set the level, and the
    exposure counters (member-seconds, restart-proof: from the persisted memory)."""

    def __init__(self, gauge: Callable[[str, str], GaugeMetricFamily]) -> None:
        self.started = {
            kind: gauge(f"{kind}_started_timestamp_seconds", f"Since when members are {kind}")
            for kind in SIDES
        }
        self.reason = StateSets(
            "vault_drift_audience_alert_reason",
            "Which side of the drift set the alert level: missing (an outage) or extra (an"
            " exposure)" + FROM_LAST_CHECK,
            "alert_reason",
        )
        self.seconds = {
            kind: CounterMetricFamily(
                f"vault_drift_audience_{kind}_member_seconds",
                f"Sum over members of the seconds each has been {kind}, as observed by checks"
                " (persisted: a restart neither resets nor repeats it)",
                labels=LABELS,
            )
            for kind in SIDES
        }

    def add(self, labels: list[str], check: AudienceCheck, reason: Side | None) -> None:
        since = {Side.MISSING: check.missing_since, Side.EXTRA: check.extra_since}
        totals = member_seconds(check.memory)
        for kind in SIDES:
            moment = since[kind]
            if moment is not None:
                self.started[kind].add_metric(labels, moment.timestamp())
            self.seconds[kind].add_metric(labels, totals.of(kind))
        self.reason.add(labels, reason or "", list(SIDES))

    def families(self) -> Iterator[Metric]:
        yield from self.started.values()
        yield self.reason.family
        yield from self.seconds.values()


def revocation_histogram(snapshot: Snapshot) -> HistogramMetricFamily:
    """Revocation latency from the persisted totals; every (namespace, provider) of the
    audiences has its series from the start, so a first revocation is an increase."""
    family = HistogramMetricFamily(
        "vault_drift_revocation_duration_seconds",
        "Seconds from an extra member's first sighting to the check that found it gone,"
        " whatever removed it",
        labels=["namespace", "provider"],
    )
    keys = {(c.audience.namespace, c.audience.provider) for c in snapshot.checks.values()}
    for key in sorted(keys | snapshot.revocations.keys()):
        totals = snapshot.revocations.get(key, LatencyTotals())
        family.add_metric(list(key), totals.cumulative(), totals.seconds)
    return family
