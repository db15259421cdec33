"""Write deploy/kubernetes/base/prometheusrule.yaml: alerts.yml as a Prometheus Operator
PrometheusRule, so that the Operator loads exactly the rules the promtool tests check.

    python scripts/prometheusrule.py          # rewrite the file
    python scripts/prometheusrule.py --check  # exit 1 if the file differs (tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "alerts.yml"
OUT = ROOT / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml"
HEADER = (
    "# Generated from alerts.yml by scripts/prometheusrule.py: do not edit, run the script.\n"
    "# The Prometheus Operator loads it; its ruleSelector must match these labels (an overlay\n"
    "# adds the one your Prometheus selects, e.g. release: kube-prometheus-stack).\n"
)


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the expressions), as alerts.yml writes them."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def prometheus_rule(alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "vault-drift"},
        "spec": {"groups": alerts["groups"]},
    }


def render() -> str:
    rule = prometheus_rule(yaml.safe_load(ALERTS.read_text()))
    body = yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} differs from alerts.yml: run scripts/prometheusrule.py")
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
