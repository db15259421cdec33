"""What ``/metrics`` answers: content negotiation (OpenMetrics 1.0.0 or the text format) and
the render cache of the per-audience part."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from exporter.clock import Clock, utc_now
from exporter.cloudflare.ratelimit import StatsSnapshot
from exporter.core.model import Side
from exporter.core.provider import ProviderStats
from exporter.core.snapshot import Snapshot
from exporter.metrics.audiences import AudienceCollector
from exporter.metrics.counters import ExporterMetrics
from exporter.metrics.feed import FeedCollector
from exporter.metrics.health import HealthCollector, StandbyCollector
from exporter.metrics.providers import ProviderCollector
from exporter.service.feed import ChangeFeed

OPENMETRICS_EOF = b"# EOF\n"
# Renderings of the audience part kept per snapshot: one per format a scraper asked for (the
# version in an Accept header is free text, so the count is capped).
MAX_CACHED_FORMATS = 4
Encoder = Callable[[CollectorRegistry], bytes]


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
        for kind, since in ((Side.MISSING, check.missing_since), (Side.EXTRA, check.extra_since)):
            if since is not None:
                thresholds = levels.of(kind)
                moments.append(since + timedelta(seconds=thresholds.warning_seconds))
                moments.append(since + timedelta(seconds=thresholds.critical_seconds))
    return min((m for m in moments if m > now), default=datetime.max.replace(tzinfo=UTC))


def build_exposition(
    snapshot: Callable[[], Snapshot],
    cloudflare_stats: Callable[[], StatsSnapshot],
    clock: Clock = utc_now,
    counters: ExporterMetrics | None = None,
    provider_stats: Callable[[], Mapping[str, ProviderStats]] | None = None,
    feed: ChangeFeed | None = None,
) -> tuple[Exposition, ExporterMetrics]:
    """The exposition over a snapshot source; ``counters`` when they exist before the source."""
    # No ``_created`` series for the counters and the histogram: nothing reads them (alerts and
    # dashboards use rate() and increase()). The switch is process-wide in prometheus_client.
    disable_created_metrics()
    counters = counters or ExporterMetrics()
    registry = counters.registry
    interval = feed.full_interval_seconds if feed is not None else None
    registry.register(HealthCollector(snapshot, cloudflare_stats, interval=interval))
    if provider_stats is not None:
        registry.register(ProviderCollector(provider_stats))
    if feed is not None:
        registry.register(FeedCollector(feed.stats, clock))
    ProcessCollector(registry=registry)  # process_start_time_seconds feeds the staleness alert
    return Exposition(snapshot, registry, clock), counters


class StandbyExposition:
    """What a standby's ``/metrics`` answers: ``vault_drift_leader 0``, the build and the
    process series; no audience series (the leader exports those)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StandbyCollector())
        ProcessCollector(registry=self.registry)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        encoder, content_type = negotiate(accept)
        return encoder(self.registry), content_type
