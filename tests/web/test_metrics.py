"""/metrics: golden exposition with a pinned clock, promtool's lint, vanishing series."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from support import FixedClock, require_tool

from exporter.metrics import DriftCollector, Exposition
from exporter.service.checker import Checker

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "metrics" / "sample.prom"
FIXED_STATS = {
    "requests": {("GET", "2xx"): 12, ("PUT", "2xx"): 1, ("GET", "5xx"): 2, ("GET", "error"): 1},
    "rate_limited_total": 3,
    "rate_limit_remaining": 1150.0,
    "rate_limit_reset_seconds": 120.0,
    "paused_until": None,
    "paused_until_wall": None,
}


def exposition(checker: Checker) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DriftCollector(lambda: checker.snapshots.current, lambda: FIXED_STATS))
    return Exposition(lambda: checker.snapshots.current, registry, checker.clock).render().decode()


def test_exposition_matches_the_golden_file(checker: Checker) -> None:
    checker.check_all()
    text = exposition(checker)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "run with UPDATE_GOLDEN=1 to accept a deliberate change"


def test_promtool_finds_nothing_to_lint(client: TestClient, tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    body = client.get("/metrics").text
    assert "vault_drift_checks_total" in body and "vault_drift_build_info" in body
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


def test_no_email_group_id_or_error_text_in_any_label(client: TestClient) -> None:
    body = client.get("/metrics").text
    assert "@" not in body
    assert "dead" not in body  # the missing group's id
    assert "not found" not in body


def test_series_of_a_removed_audience_disappear(
    client: TestClient, checker: Checker, sample_db: Path
) -> None:
    assert 'audience="lms-instructors"' in client.get("/metrics").text
    with sqlite3.connect(sample_db) as conn:
        conn.execute("DELETE FROM sys_infra_state WHERE audience = 'lms-instructors'")
    checker.check_all()
    assert 'audience="lms-instructors"' not in client.get("/metrics").text


def test_state_sets_have_one_current_state(client: TestClient) -> None:
    lines = [
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("vault_drift_audience_status{") and 'audience="sales-team"' in line
    ]
    assert len(lines) == 4
    assert [line for line in lines if line.endswith(" 1.0")] == [
        'vault_drift_audience_status{audience="sales-team",namespace="sales",provider="cloudflare_access",status="error"} 1.0'
    ]


def test_the_audience_part_is_reused_until_it_can_change(
    checker: Checker, clock: FixedClock
) -> None:
    checker.check_all()
    registry = CollectorRegistry(auto_describe=False)
    exposition = Exposition(lambda: checker.snapshots.current, registry, clock)
    first = exposition.audience_part()
    assert exposition.audience_part() is first  # same snapshot, nothing due: the same bytes
    level = 'vault_drift_audience_alert_level{audience="lms-instructors",level="warning",namespace="lms",provider="cloudflare_access"} 1.0'
    assert level not in first.decode()
    clock.advance(minutes=61)  # the drift crosses the warning threshold by itself
    aged = exposition.audience_part()
    assert aged is not first and level in aged.decode()
    checker.check_all()  # a new snapshot
    assert exposition.audience_part() is not aged
