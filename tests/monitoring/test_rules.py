"""alerts.yml, its promtool unit tests, the Prometheus and Alertmanager configs, run by the real
tools (Debian prometheus / prometheus-alertmanager): missing tools skip, or fail under CI=true.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from promstack import ROOT, require_tool

ALERTS = ROOT / "alerts.yml"
RULE_TESTS = sorted((ROOT / "tests" / "alerts").glob("*.test.yml"))
ALERTMANAGER = ROOT / "deploy" / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
SEVERITIES = {
    "VaultDriftInfo": "info",
    "VaultDriftWarning": "warning",
    "VaultDriftCritical": "critical",
    "VaultDriftSyncError": "warning",
    "VaultDriftCheckStale": "warning",
    "VaultDriftExporterDown": "critical",
    "VaultDriftRateLimited": "warning",
}
RUNBOOK_BASE = "https://github.com/tpb-vault/vault-drift/blob/main/docs/runbooks.md#"


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def alerting_rules() -> dict[str, dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_promtool_check_rules() -> None:
    result = run(require_tool("promtool"), "check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = sum(len(g["rules"]) for g in yaml.safe_load(ALERTS.read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in result.stdout


def test_promtool_rule_unit_tests() -> None:
    assert [p.name for p in RULE_TESTS] == [
        "drift-critical.test.yml",
        "drift.test.yml",
        "exporter.test.yml",
        "recording.test.yml",
    ]
    result = run(require_tool("promtool"), "test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


@pytest.mark.parametrize(
    ("mutation", "test_file", "original", "replacement"),
    [
        (
            "drift alerts stop skipping ignored audiences",
            "drift.test.yml",
            "unless on (audience, namespace, provider) (vault_drift_audience_ignored == 1)",
            "unless on (audience, namespace, provider) (vault_drift_audience_ignored == 2)",
        ),
        ("sync errors alert after 10m", "exporter.test.yml", "for: 15m", "for: 10m"),
        (
            "staleness at one interval",
            "exporter.test.yml",
            "> 2 * vault_drift_check_interval_seconds",
            "> 1 * vault_drift_check_interval_seconds",
        ),
        (
            "absent target not alerted",
            "exporter.test.yml",
            'or absent(up{job="vault-drift"})',
            "",
        ),
        (
            "critical tier read from the warning level",
            "drift-critical.test.yml",
            'vault_drift_audience_alert_level{level="critical"} == 1',
            'vault_drift_audience_alert_level{level="warning"} == 1',
        ),
    ],
)
def test_rule_unit_tests_catch_a_broken_rule(
    tmp_path: Path, mutation: str, test_file: str, original: str, replacement: str
) -> None:
    """The promtool tests are not vacuous: each of these regressions makes them fail."""
    text = ALERTS.read_text()
    assert original in text, mutation
    (tmp_path / "alerts.yml").write_text(text.replace(original, replacement))
    (tmp_path / "tests" / "alerts").mkdir(parents=True)
    copy = tmp_path / "tests" / "alerts" / test_file
    shutil.copy(ROOT / "tests" / "alerts" / test_file, copy)
    result = run(require_tool("promtool"), "test", "rules", copy, cwd=tmp_path)
    assert result.returncode != 0, f"{mutation}: promtool tests still pass\n{result.stdout}"
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_is_tested_silent_and_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
                for alert in check.get("exp_alerts") or []:
                    # Exact labels and all four annotations on every firing expectation.
                    assert alert["exp_labels"]["severity"] == SEVERITIES[check["alertname"]]
                    assert set(alert["exp_annotations"]) == {
                        "summary",
                        "description",
                        "runbook_url",
                        "dashboard_url",
                    }
    assert firing == set(SEVERITIES)
    assert silent == set(SEVERITIES)


@pytest.mark.parametrize("name", sorted(SEVERITIES))
def test_alert_labels_annotations_and_runbook(name: str) -> None:
    rule = alerting_rules()[name]
    assert rule["labels"] == {"severity": SEVERITIES[name]}
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
    assert "{{" not in annotations["summary"], "summary is a static sentence"
    assert "{{" in annotations["description"]
    assert annotations["runbook_url"] == RUNBOOK_BASE + name.lower()
    assert re.match(r"https?://[^/\s]+/d/vault-drift-", annotations["dashboard_url"])
    # The anchor exists: a "## VaultDriftX" heading renders as #vaultdriftx on GitHub.
    headings = re.findall(r"^## (\S+)\s*$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    assert name in headings


def test_drift_tiers_come_from_the_level_gauge_and_skip_ignored() -> None:
    rules = alerting_rules()
    assert set(rules) == set(SEVERITIES)
    for name, level in (
        ("VaultDriftInfo", "info"),
        ("VaultDriftWarning", "warning"),
        ("VaultDriftCritical", "critical"),
    ):
        expr = rules[name]["expr"]
        assert f'vault_drift_audience_alert_level{{level="{level}"}} == 1' in expr
        assert "vault_drift_audience_ignored == 1" in expr
        # A long `for` would restart from zero when Prometheus restarts.
        assert "for" not in rules[name]


def test_alertmanager_config_is_valid() -> None:
    result = run(require_tool("amtool"), "check-config", ALERTMANAGER)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=VaultDriftCritical", "severity=critical", "audience=lms-viewer"], "pager"),
        (["alertname=VaultDriftExporterDown", "severity=critical"], "pager"),
        (["alertname=VaultDriftWarning", "severity=warning", "audience=lms-viewer"], "chat"),
        (["alertname=VaultDriftRateLimited", "severity=warning"], "chat"),
        (["alertname=VaultDriftInfo", "severity=info", "audience=lms-viewer"], "dashboard-only"),
        (["alertname=SomethingElse", "severity=page"], "email"),
    ],
)
def test_alertmanager_routes(labels: list[str], receiver: str) -> None:
    result = run(
        require_tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_alertmanager_receivers_and_inhibition() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert {"webhook_configs", "email_configs"} <= receivers["pager"].keys()
    assert {"slack_configs", "email_configs"} <= receivers["chat"].keys()
    assert set(receivers["dashboard-only"]) == {"name"}, "info alerts notify nobody"
    assert config["route"]["group_by"] == ["alertname", "audience"]
    critical = config["inhibit_rules"][0]
    assert critical["source_matchers"] == ['severity="critical"']
    assert critical["target_matchers"] == ['severity=~"warning|info"']
    assert "audience" in critical["equal"]


def test_deploy_prometheus_config_is_valid(tmp_path: Path) -> None:
    """Checked with alerts.yml beside it, exactly as docker-compose mounts them."""
    shutil.copy(ROOT / "deploy" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    result = run(require_tool("promtool"), "check", "config", tmp_path / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    config = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert jobs == ["vault-drift"]
