"""What the collectors share: the per-audience labels, HELP wording, StateSets."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

LABELS = ["audience", "namespace", "provider"]
FROM_LAST_CHECK = " (from the last background check)"


class StateSets:
    """A StateSet as a gauge: one series per state, 1 for the current one, 0 for the others.

    (prometheus_client's StateSetMetricFamily would name the label after the metric; the
    contract names it ``status`` / ``level``.)
    """

    def __init__(self, name: str, doc: str, label: str) -> None:
        self.family = GaugeMetricFamily(name, doc, labels=[*LABELS, label])

    def add(self, labels: list[str], current: str, states: list[str]) -> None:
        for state in states:
            self.family.add_metric([*labels, state], 1 if state == current else 0)
