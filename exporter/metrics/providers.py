"""The providers' own counters: requests by provider, operation and status class, throttling.

``vault_drift_provider_requests_total{provider,operation,status_class}`` counts every request
each provider's client sent: Cloudflare Access's by HTTP method (its listing, GETs, PUTs and
POSTs), AWS IAM Identity Center's by API operation (``ListUsers``, ``ListGroupMemberships``,
``CreateGroupMembership`` ...). AWS and Cloudflare have separate budgets and pauses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.core.provider import ProviderStats


class ProviderCollector(Collector):
    """Families from each provider's ``request_stats()`` (provider name -> its stats)."""

    def __init__(
        self,
        stats: Callable[[], Mapping[str, ProviderStats]],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._stats = stats
        self._wall_clock = wall_clock

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        requests = CounterMetricFamily(
            "vault_drift_provider_requests",
            "Requests sent to each provider (Cloudflare Access by HTTP method, AWS IAM Identity"
            " Center by API operation), by status class",
            labels=["provider", "operation", "status_class"],
        )
        throttled = CounterMetricFamily(
            "vault_drift_provider_throttled",
            "Throttling answers from each provider (Cloudflare's 429, AWS's ThrottlingException,"
            " 429 or 5xx); each pauses that provider's calls only",
            labels=["provider"],
        )
        paused = GaugeMetricFamily(
            "vault_drift_provider_paused_until_timestamp_seconds",
            "While a provider's calls are paused after throttling: when they resume; 0 otherwise",
            labels=["provider"],
        )
        now = self._wall_clock()
        for provider, values in sorted(stats.items()):
            for (operation, status_class), count in sorted(values.requests.items()):
                requests.add_metric([provider, operation, status_class], count)
            throttled.add_metric([provider], values.throttled_total)
            until = values.paused_until_wall
            paused.add_metric([provider], until if until is not None and until > now else 0)
        yield requests
        yield throttled
        yield paused
