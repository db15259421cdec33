"""Session revocation's families (README, "Effective removal"), from persisted totals.

The counts and the histogram are read back from the Vault after each run of the revoker, so
a restart neither resets nor repeats them; ``vault_drift_session_revoke_up`` is the process's
own view of the last call (absent until one was made).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter.core.exposure import LatencyTotals
from exporter.core.sessions import FAILED, OK, REVOKING_PROVIDERS
from exporter.service.sessions import SessionState


class SessionCollector(Collector):
    """``audiences`` gives the (namespace, provider) pairs whose audiences can have their
    sessions revoked: each has its series from the start, so a first revocation is an
    increase (as for ``vault_drift_revocation_duration_seconds``)."""

    def __init__(
        self,
        state: Callable[[], SessionState],
        enabled: Callable[[], bool],
        audiences: Callable[[], Iterable[tuple[str, str]]] = tuple,
    ) -> None:
        self._state, self._enabled, self._audiences = state, enabled, audiences

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        totals = state.totals
        known = {key for key in self._audiences() if key[1] in REVOKING_PROVIDERS}
        yield GaugeMetricFamily(
            "vault_drift_session_revocation_enabled",
            "1 while the setting revoke_sessions is on: leavers' Access sessions are revoked"
            " (the revocation SLO then reads vault_drift_access_end_duration_seconds)",
            value=1 if self._enabled() else 0,
        )
        revocations = CounterMetricFamily(
            "vault_drift_session_revocations",
            "Calls to end a leaver's Cloudflare Access sessions, by result (ok, failed)",
            labels=["namespace", "provider", "result"],
        )
        keys = sorted(known | {(n, p) for n, p, _ in totals.counts} | set(totals.access_end))
        for namespace, provider in keys:
            for result in (OK, FAILED):
                count = totals.counts.get((namespace, provider, result), 0)
                revocations.add_metric([namespace, provider, result], count)
        yield revocations
        yield GaugeMetricFamily(
            "vault_drift_session_revocations_pending",
            "Session revocations recorded and not yet confirmed by Cloudflare",
            value=totals.pending,
        )
        if state.up is not None:
            yield GaugeMetricFamily(
                "vault_drift_session_revoke_up",
                "1 if Cloudflare accepts the token's calls to revoke sessions; 0 after a refusal"
                " (401/403: the token lacks the Access write permission)",
                value=1 if state.up else 0,
            )
        access_end = HistogramMetricFamily(
            "vault_drift_access_end_duration_seconds",
            "Per revoked leaver: from first seen extra (or its removal) to its sessions revoked",
            labels=["namespace", "provider"],
        )
        for namespace, provider in sorted(known | set(totals.access_end)):
            latency = totals.access_end.get((namespace, provider), LatencyTotals())
            access_end.add_metric(
                [namespace, provider],
                [(le, float(count)) for le, count in latency.cumulative()],
                latency.seconds,
            )
        yield access_end
