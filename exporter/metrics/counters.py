"""The exporter's own events (checks, phases, syncs, mails) as counters and histograms."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from exporter.core.plan import BLOCK_REASONS

PHASES = ("vault", "cloudflare", "record")


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
