"""The exemption families: members exempt per side, and when the next exemption ends (the
dashboards' "ending within 7 days" table; no email is ever a label)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter.core.exemptions import SIDES, Exemption
from exporter.metrics.families import LABELS


class ExemptFamilies:
    def __init__(self) -> None:
        self.members = GaugeMetricFamily(
            "vault_drift_audience_exempt_members",
            "Members of the audience an exemption in force covers, by side (extra: may stay"
            " in the group; missing: may stay out); they are not drift",
            labels=[*LABELS, "side"],
        )
        self.next_end = GaugeMetricFamily(
            "vault_drift_audience_exemption_next_end_timestamp_seconds",
            "When the audience's first exemption in force ends; absent when it has none",
            labels=LABELS,
        )

    def add(self, labels: list[str], exemptions: Iterable[Exemption]) -> None:
        counts = dict.fromkeys(SIDES, 0)
        ends = []
        for exemption in exemptions:
            counts[exemption.side] = counts.get(exemption.side, 0) + 1
            ends.append(exemption.expires_at)
        for side in SIDES:
            self.members.add_metric([*labels, side], counts[side])
        if ends:
            self.next_end.add_metric(labels, min(ends).timestamp())

    def families(self) -> Iterator[Metric]:
        yield self.members
        yield self.next_end
