"""The webhook outbox's delivery (README "Webhooks"): registered only when receivers are
configured."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class WebhookMetrics:
    """Implements the dispatcher's ``DeliveryEvents``."""

    RESULTS = ("ok", "retry", "failed")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "vault_drift_webhook_deliveries",
            "Webhook delivery attempts by result: ok (the receiver took it), retry (it will be"
            " sent again), failed (given up: 410, another 4xx three times, or 24 h of retries)",
            ["result"],
            registry=registry,
        )
        self.outbox = Gauge(
            "vault_drift_webhook_outbox_size",
            "Webhook events waiting in the outbox (one per event and receiver)",
            registry=registry,
        )
        for result in self.RESULTS:
            self.deliveries.labels(result)

    def delivered(self, result: str) -> None:
        self.deliveries.labels(result).inc()

    def outbox_size(self, size: int) -> None:
        self.outbox.set(size)
