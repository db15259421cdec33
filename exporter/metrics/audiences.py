"""The per-audience families, built from the last snapshot on every scrape.

An audience that leaves ``sys_infra_state`` leaves the snapshot, and so its series vanish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.clock import Clock, utc_now
from exporter.core.model import AlertLevel, Status
from exporter.core.snapshot import Snapshot
from exporter.metrics.exemptions import ExemptFamilies
from exporter.metrics.exposure import ExposureSides, revocation_histogram
from exporter.metrics.families import FROM_LAST_CHECK, LABELS, StateSets


class AudienceCollector(Collector):
    """The per-audience families, from the snapshot and the time (levels and ignores age)."""

    def __init__(self, snapshot: Callable[[], Snapshot], clock: Clock = utc_now) -> None:
        self._snapshot = snapshot
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        yield from self._audience_families(self._snapshot(), self._clock())

    def _audience_families(self, snapshot: Snapshot, now: Any) -> Iterator[Metric]:
        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(
                f"vault_drift_audience_{name}", doc + FROM_LAST_CHECK, labels=LABELS
            )

        status = StateSets(
            "vault_drift_audience_status", "Audience status" + FROM_LAST_CHECK, "status"
        )
        level = StateSets(
            "vault_drift_audience_alert_level", "Drift alert level" + FROM_LAST_CHECK, "level"
        )
        expected = gauge("members_expected", "Members Vault grants the audience")
        actual = gauge("members_actual", "Email members of the Cloudflare group")
        missing = gauge("members_missing", "Members in Vault, not in Cloudflare")
        extra = gauge("members_extra", "Members in Cloudflare, not in Vault")
        started = gauge("drift_started_timestamp_seconds", "Start of the current drift")
        ignored = gauge("ignored", "1 while an operator ignores the audience's drift")
        checked = gauge("last_check_timestamp_seconds", "Last completed check of the audience")
        synced = gauge("last_sync_timestamp_seconds", "Last successful sync of the audience")
        sides = ExposureSides(gauge)
        manual = CounterMetricFamily(
            "vault_drift_audience_manual_changes",
            "Cloudflare edits to the audience's group by anyone but vault-api and vault-drift,"
            " as read from the account audit log (persisted)",
            labels=LABELS,
        )
        exempt = ExemptFamilies()
        for check in snapshot.checks.values():
            a = check.audience
            labels = [a.audience, a.namespace, a.provider]
            exempt.add(labels, snapshot.exemptions_of(a.audience, now))
            verdict = snapshot.verdict(check, now)
            status.add(labels, str(check.status), [str(s) for s in Status])
            level.add(labels, str(verdict.level), [str(x) for x in AlertLevel])
            expected.add_metric(labels, check.expected_count)
            actual.add_metric(labels, check.actual_count)
            missing.add_metric(labels, len(check.missing))
            extra.add_metric(labels, len(check.extra))
            if check.drift_since is not None:
                started.add_metric(labels, check.drift_since.timestamp())
            sides.add(labels, check, verdict.reason)
            ignored.add_metric(labels, 1 if snapshot.ignore_of(a.audience, now) else 0)
            checked.add_metric(labels, check.checked_at.timestamp())
            if a.last_sync_at is not None:
                synced.add_metric(labels, a.last_sync_at.timestamp())
            manual.add_metric(labels, snapshot.manual_changes.get(a.audience, 0))
        yield from (status.family, expected, actual, missing, extra, started, level.family)
        yield from (ignored, checked, synced)
        yield from sides.families()
        yield manual
        yield from exempt.families()
        yield revocation_histogram(snapshot)
