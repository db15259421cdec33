"""``/metrics``: per-audience families built from the last snapshot on every scrape.

The collector never calls Cloudflare or the database; an audience that leaves
``sys_infra_state`` leaves the snapshot, and so its series vanish. The exporter's own events
(checks, syncs, mails) are ordinary counters in the same registry. The format is the one the
scraper asks for (prometheus_client's negotiation): OpenMetrics 1.0.0 or the text format.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.clock import Clock, utc_now
from exporter.core.exposure import LatencyTotals, member_seconds
from exporter.core.model import AlertLevel, AudienceCheck, Status
from exporter.core.plan import BLOCK_REASONS
from exporter.core.snapshot import Snapshot

LABELS = ["audience", "namespace", "provider"]
PHASES = ("vault", "cloudflare", "record")
SIDES = ("missing", "extra")
FROM_LAST_CHECK = " (from the last background check)"
OPENMETRICS_EOF = b"# EOF\n"
# Renderings of the audience part kept per snapshot: one per format a scraper asked for (the
# version in an Accept header is free text, so the count is capped).
MAX_CACHED_FORMATS = 4
Encoder = Callable[[CollectorRegistry], bytes]


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

        status = _StateSets(
            "vault_drift_audience_status", "Audience status" + FROM_LAST_CHECK, "status"
        )
        level = _StateSets(
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
        sides = _Sides(gauge)
        manual = CounterMetricFamily(
            "vault_drift_audience_manual_changes",
            "Cloudflare edits to the audience's group by anyone but vault-api and vault-drift,"
            " as read from the account audit log (persisted)",
            labels=LABELS,
        )
        for check in snapshot.checks.values():
            a = check.audience
            labels = [a.audience, a.namespace, a.provider]
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
        yield revocation_histogram(snapshot)


class _Sides:
    """The two sides of a drift, apart: when each started, which one set the level, and the
    exposure counters (member-seconds, restart-proof: from the persisted memory)."""

    def __init__(self, gauge: Callable[[str, str], GaugeMetricFamily]) -> None:
        self.started = {
            kind: gauge(f"{kind}_started_timestamp_seconds", f"Since when members are {kind}")
            for kind in SIDES
        }
        self.reason = _StateSets(
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

    def add(self, labels: list[str], check: AudienceCheck, reason: str | None) -> None:
        since = {"missing": check.missing_since, "extra": check.extra_since}
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


class DriftCollector(Collector):
    """The exporter-wide families: last cycle, sources, Cloudflare client, build."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        cloudflare_stats: Callable[[], dict[str, Any]],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot = snapshot
        self._cloudflare_stats = cloudflare_stats
        self._monotonic = monotonic

    def _pausing(self, stats: dict[str, Any]) -> bool:
        """The client's pause is still running (its end may lie in the past)."""
        until = stats.get("paused_until")
        return until is not None and until > self._monotonic()

    def collect(self) -> Iterator[Metric]:
        yield from self._cycle_families(self._snapshot())
        yield from self._cloudflare_families(self._cloudflare_stats())
        yield InfoMetricFamily("vault_drift_build", "vault-drift build", {"version": __version__})

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
            value=snapshot.settings.check_interval_seconds,
        )
        up = GaugeMetricFamily(
            "vault_drift_source_up", "1 if the last read of the source worked", labels=["source"]
        )
        for source, state in (
            ("vault", snapshot.vault_up),
            ("cloudflare_access", snapshot.cloudflare_up),
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

    def _cloudflare_families(self, stats: dict[str, Any]) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "vault_drift_cloudflare_requests",
            "HTTP requests sent to Cloudflare, by API (access, audit, d1), method and status class",
            labels=["api", "method", "status_class"],
        )
        for (method, status_class), count in sorted(stats["requests"].items()):
            requests.add_metric(["access", method, status_class], count)
        for (method, status_class), count in sorted(stats.get("audit", {}).items()):
            requests.add_metric(["audit", method, status_class], count)
        d1 = stats.get("d1")
        for (method, status_class), count in sorted((d1 or {}).get("requests", {}).items()):
            requests.add_metric(["d1", method, status_class], count)
        yield requests
        if d1 is not None:
            yield CounterMetricFamily(
                "vault_drift_d1_rows_read",
                "Rows D1 read for the exporter (meta.rows_read of its answers; D1 bills them)",
                value=d1["rows_read"],
            )
            yield CounterMetricFamily(
                "vault_drift_d1_rows_written",
                "Rows D1 wrote for the exporter (meta.rows_written of its answers)",
                value=d1["rows_written"],
            )
            yield CounterMetricFamily(
                "vault_drift_d1_request_seconds",
                "Time spent waiting for D1's answers (reads and writes of the Vault)",
                value=round(d1["seconds"], 6),
            )
        yield CounterMetricFamily(
            "vault_drift_cloudflare_rate_limited",
            "429 answers received from Cloudflare",
            value=stats["rate_limited_total"],
        )
        if stats["rate_limit_remaining"] is not None:
            yield GaugeMetricFamily(
                "vault_drift_cloudflare_rate_limit_remaining",
                "Requests left in Cloudflare's current rate-limit window (Ratelimit header)",
                value=stats["rate_limit_remaining"],
            )
        paused = stats["paused_until_wall"]
        yield GaugeMetricFamily(
            "vault_drift_cloudflare_paused_until_timestamp_seconds",
            "While Cloudflare calls are paused after a 429: when they resume; 0 otherwise",
            value=paused if paused is not None and self._pausing(stats) else 0,
        )


class _StateSets:
    """A StateSet as a gauge: one series per state, 1 for the current one, 0 for the others.

    (prometheus_client's StateSetMetricFamily would name the label after the metric; the
    contract names it ``status`` / ``level``.)
    """

    def __init__(self, name: str, doc: str, label: str) -> None:
        self.family = GaugeMetricFamily(name, doc, labels=[*LABELS, label])

    def add(self, labels: list[str], current: str, states: list[str]) -> None:
        for state in states:
            self.family.add_metric([*labels, state], 1 if state == current else 0)


class ExporterMetrics:
    """The exporter's own events, as counters and a histogram; implements service Events."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=False)
        registry = self.registry
        self.checks = Counter(
            "vault_drift_checks", "Check cycles run", ["scope", "result"], registry=registry
        )
        self.duration = Histogram(
            "vault_drift_check_duration_seconds",
            "Duration of check cycles",
            ["scope"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.phases = Histogram(
            "vault_drift_check_phase_duration_seconds",
            "Time a check spent in each phase: reading the Vault (on D1, its requests),"
            " reading Cloudflare, recording the results (the Vault and Cloudflare reads of a"
            " full check overlap)",
            ["scope", "phase"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.syncs = Counter(
            "vault_drift_syncs",
            "Sync attempts by trigger and result",
            ["trigger", "result"],
            registry=registry,
        )
        self.blocked = Counter(
            "vault_drift_syncs_blocked",
            "Syncs refused by a safety guard",
            ["reason"],
            registry=registry,
        )
        self.mails = Counter(
            "vault_drift_mails", "Mails by kind and result", ["kind", "result"], registry=registry
        )
        for reason in BLOCK_REASONS:
            self.blocked.labels(reason)
        for trigger in ("api", "page", "cli", "auto"):
            for result in ("synced", "noop", "blocked", "error"):
                self.syncs.labels(trigger, result)
        for kind in ("digest", "critical", "resolved"):
            for result in ("sent", "failed"):
                self.mails.labels(kind, result)
        for scope in ("full", "partial"):
            self.duration.labels(scope)
            for phase in PHASES:
                self.phases.labels(scope, phase)

    def checked(self, scope: str, success: bool, seconds: float) -> None:
        self.checks.labels(scope, "success" if success else "failure").inc()
        self.duration.labels(scope).observe(seconds)

    def phase(self, scope: str, phase: str, seconds: float) -> None:
        self.phases.labels(scope, phase).observe(seconds)

    def synced(self, trigger: str, result: str, blocked_reason: str | None) -> None:
        self.syncs.labels(trigger, result).inc()
        if blocked_reason is not None and result == "blocked":
            self.blocked.labels(blocked_reason).inc()

    def mailed(self, kind: str, result: str) -> None:
        self.mails.labels(kind, result).inc()


class Exposition:
    """What ``/metrics`` answers, in the format the scraper's Accept header asks for.

    The per-audience part (thousands of samples at 1,000 audiences, most of a scrape's cost in
    text formatting) is rendered once per snapshot and format, and reused until it can change:
    a new check, or an alert level or an ignore reaching its time. The rest is rendered on
    every scrape.
    """

    def __init__(
        self, snapshot: Callable[[], Snapshot], registry: CollectorRegistry, clock: Clock = utc_now
    ) -> None:
        self._snapshot, self._clock, self.registry = snapshot, clock, registry
        self._audiences = CollectorRegistry(auto_describe=False)
        self._audiences.register(AudienceCollector(snapshot, clock))
        self._lock = threading.Lock()
        self._cached: tuple[Snapshot, datetime, dict[str, bytes]] | None = None

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The body and its content type: OpenMetrics (ending in its one ``# EOF``) when
        ``accept`` asks for it, the text format 0.0.4 otherwise."""
        encoder, content_type = negotiate(accept)
        return self._audience_part(encoder, content_type) + encoder(self.registry), content_type

    def audience_part(self, accept: str = "") -> bytes:
        return self._audience_part(*negotiate(accept))

    def _audience_part(self, encoder: Encoder, content_type: str) -> bytes:
        snapshot, now = self._snapshot(), self._clock()
        with self._lock:
            cached = self._cached
            if cached is None or cached[0] is not snapshot or now >= cached[1]:
                cached = self._cached = (snapshot, next_change(snapshot, now), {})
            bodies = cached[2]
            body = bodies.get(content_type)
            if body is None:
                # Each OpenMetrics rendering ends with "# EOF": only the whole body's may stay.
                body = encoder(self._audiences).removesuffix(OPENMETRICS_EOF)
                if len(bodies) < MAX_CACHED_FORMATS:
                    bodies[content_type] = body
            return body


def negotiate(accept: str) -> tuple[Encoder, str]:
    """prometheus_client's choice for an Accept header; one it cannot read (a version such as
    ``version=x`` makes it raise) gets the text format, like no Accept header at all."""
    try:
        return choose_encoder(accept)
    except (TypeError, ValueError):
        return choose_encoder("")


def next_change(snapshot: Snapshot, now: datetime) -> datetime:
    """The first time after ``now`` at which an alert level or an ignore changes by itself."""
    levels = snapshot.settings.levels
    moments = [ignore.until for ignore in snapshot.ignores.values()]
    for check in snapshot.checks.values():
        for kind, since in (("missing", check.missing_since), ("extra", check.extra_since)):
            if since is not None:
                thresholds = levels.of(kind)
                moments.append(since + timedelta(seconds=thresholds.warning_seconds))
                moments.append(since + timedelta(seconds=thresholds.critical_seconds))
    return min((m for m in moments if m > now), default=datetime.max.replace(tzinfo=UTC))


def build_exposition(
    snapshot: Callable[[], Snapshot],
    cloudflare_stats: Callable[[], dict[str, Any]],
    clock: Clock = utc_now,
    counters: ExporterMetrics | None = None,
) -> tuple[Exposition, ExporterMetrics]:
    """The exposition over a snapshot source; ``counters`` when they exist before the source."""
    # No ``_created`` series for the counters and the histogram: nothing reads them (alerts and
    # dashboards use rate() and increase()). The switch is process-wide in prometheus_client.
    disable_created_metrics()
    counters = counters or ExporterMetrics()
    registry = counters.registry
    registry.register(DriftCollector(snapshot, cloudflare_stats))
    ProcessCollector(registry=registry)  # process_start_time_seconds feeds the staleness alert
    return Exposition(snapshot, registry, clock), counters
