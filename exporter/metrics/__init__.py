"""``/metrics``: collectors by concern, built from the last snapshot on every scrape, and the
exposition. The collectors never call Cloudflare or the database; the exporter's own events
(checks, syncs, mails) are ordinary counters in the same registry."""

from exporter.metrics.counters import ExporterMetrics
from exporter.metrics.exposition import (
    Exposition,
    StandbyExposition,
    build_exposition,
    negotiate,
    next_change,
)
from exporter.metrics.health import HealthCollector, LeaderCollector
from exporter.metrics.webhooks import WebhookMetrics

__all__ = [
    "ExporterMetrics",
    "Exposition",
    "HealthCollector",
    "LeaderCollector",
    "StandbyExposition",
    "WebhookMetrics",
    "build_exposition",
    "negotiate",
    "next_change",
]
