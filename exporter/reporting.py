"""Bridge from the exporter to ``reports``: mail settings, the critical-drift hook, the digest."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .clock import utc_now
from .config import Config
from .metrics import ExporterMetrics
from .runtime import Runtime

log = logging.getLogger("vault_drift.reporting")


def install_mail(
    runtime: Runtime, counters: ExporterMetrics
) -> list[tuple[str, Callable[[], None]]]:
    """Hook the critical-drift mail after each full check; return the daily digest job."""
    return []


def report_command(config: Config, period: str, out: str | None, send: bool) -> int:
    print("vault-drift: report: not available yet", file=sys.stderr)
    _ = (config, period, out, send, utc_now)
    return 2
