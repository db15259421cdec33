"""/metrics: golden expositions with a pinned clock, promtool's lint, vanishing series, and
the format negotiated from the Accept header (text 0.0.4 or OpenMetrics 1.0.0)."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterable
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Metric, enable_created_metrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from support import FixedClock, golden, require_tool
from support.web import services_for

from exporter.cloudflare.ratelimit import StatsSnapshot
from exporter.metrics import Exposition, HealthCollector
from exporter.service import Services
from exporter.service.checker import Checker
from exporter.web import create_app

GOLDEN = golden.ROOT / "metrics" / "sample.prom"
# What Prometheus (2.x, default config) sends: OpenMetrics first, the text format as fallback.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
FIXED_STATS = StatsSnapshot(
    requests={("GET", "2xx"): 12, ("PUT", "2xx"): 1, ("GET", "5xx"): 2, ("GET", "error"): 1},
    rate_limited_total=3,
    rate_limit_remaining=1150.0,
    rate_limit_reset_seconds=120.0,
    paused_until=None,
    paused_until_wall=None,
    audit={("GET", "2xx"): 2},
    d1=None,
)


def exposition(checker: Checker, accept: str = "") -> tuple[str, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(lambda: checker.snapshots.current, lambda: FIXED_STATS))
    body, content_type = Exposition(
        lambda: checker.snapshots.current, registry, checker.clock
    ).render(accept)
    return body.decode(), content_type


def test_exposition_matches_the_golden_file(checker: Checker) -> None:
    checker.check_all()
    text, content_type = exposition(checker)
    golden.assert_golden("metrics/sample.prom", text)
    assert content_type == TEXT


def test_openmetrics_exposition_matches_its_golden_file(checker: Checker) -> None:
    checker.check_all()
    text, content_type = exposition(checker, PROMETHEUS_ACCEPT)
    golden.assert_golden("metrics/sample.openmetrics.txt", text)
    assert content_type == OPENMETRICS
    assert text.count("# EOF") == 1 and text.endswith("\n# EOF\n")
    assert samples(parse_openmetrics(text)) == samples(parse_text(GOLDEN.read_text()))


def samples(families: Iterable[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by name and labels: the formats differ in text, not in samples."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families
        for s in family.samples
    }


def test_metrics_answers_the_format_asked_for(client: TestClient) -> None:
    """Prometheus gets OpenMetrics (one ``# EOF``, accepted by the strict OpenMetrics parser);
    anything else gets the text format; both carry the same samples."""
    om = client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert om.headers["content-type"] == OPENMETRICS
    assert om.text.count("# EOF") == 1 and om.text.endswith("\n# EOF\n")
    om_samples = samples(parse_openmetrics(om.text))
    for accept in ("text/plain;version=0.0.4;q=0.5,*/*;q=0.1", "*/*", None):
        text = client.get("/metrics", headers={"Accept": accept} if accept else {})
        assert text.headers["content-type"] == TEXT, accept
        assert "# EOF" not in text.text
        text_samples = samples(parse_text(text.text))
        assert text_samples.keys() == om_samples.keys()
        ours = {key for key in text_samples if key[0].startswith("vault_drift_")}
        assert ours and {k: text_samples[k] for k in ours} == {k: om_samples[k] for k in ours}
    assert om.headers["vary"] == "Accept"


def test_an_accept_version_prometheus_client_cannot_read_gets_the_text_format(
    client: TestClient,
) -> None:
    answer = client.get("/metrics", headers={"Accept": "application/openmetrics-text;version=x"})
    assert answer.status_code == 200 and answer.headers["content-type"] == TEXT


def test_no_created_series_in_either_format(
    services: Services, checker: Checker, clock: FixedClock
) -> None:
    """prometheus_client's switch is process-wide: start from its default (on), and let
    building the exporter's exposition turn it off."""
    enable_created_metrics()
    app = create_app(services_for(services, clock), page=False)
    checker.check_all()  # counted by the exporter's own counters and histogram
    with TestClient(app) as client:
        for accept in (PROMETHEUS_ACCEPT, ""):
            body = client.get("/metrics", headers={"Accept": accept}).text
            assert "vault_drift_checks_total{" in body
            assert "vault_drift_check_duration_seconds_count{" in body
            assert "vault_drift_syncs_total{" in body
            assert "_created" not in body, accept or "text"


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
    om = exposition.audience_part(PROMETHEUS_ACCEPT)  # each format has its own rendering
    assert om is not first and exposition.audience_part(PROMETHEUS_ACCEPT) is om
    assert b"# EOF" not in om  # the exposition ends with the only one
    level = 'vault_drift_audience_alert_level{audience="lms-instructors",level="warning",namespace="lms",provider="cloudflare_access"} 1.0'
    assert level not in first.decode()
    clock.advance(minutes=16)  # its extra member crosses the extra warning threshold (15m)
    aged = exposition.audience_part()
    assert aged is not first and level in aged.decode()
    checker.check_all()  # a new snapshot
    assert exposition.audience_part() is not aged
