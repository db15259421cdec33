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
    "VaultDriftInfo": {"info"},
    "VaultDriftWarning": {"warning"},
    "VaultDriftCritical": {"critical"},
    "VaultDriftSyncError": {"warning"},
    "VaultDriftCheckStale": {"warning"},
    "VaultDriftExporterDown": {"critical"},
    "VaultDriftRateLimited": {"warning"},
    "VaultDriftAutoSyncBlocked": {"warning"},
    # Multi-window, multi-burn-rate: the fast burn pages, the slow burn warns.
    "VaultDriftRevocationSLOBurn": {"critical", "warning"},
    "VaultDriftWebhookOutboxGrowing": {"warning"},
    "VaultDriftFeedStalled": {"warning"},
    "VaultDriftSessionRevokeDown": {"warning"},
    "VaultDriftNoLeader": {"critical"},
    "VaultDriftSplitBrain": {"critical"},
}
RUNBOOK_BASE = "https://github.com/tpb-vault/vault-drift/blob/main/docs/runbooks.md#"


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def alerting_rules() -> dict[str, list[dict]]:
    """Each alert name's rules (the SLO burn has one per severity)."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules: dict[str, list[dict]] = {}
    for rule in (r for g in groups for r in g["rules"] if "alert" in r):
        rules.setdefault(rule["alert"], []).append(rule)
    return rules


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
        "exposure.test.yml",
        "feed.test.yml",
        "recording.test.yml",
        "replicas.test.yml",
        "sessions.test.yml",
        "slo.test.yml",
        "webhooks.test.yml",
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
            "> 2 * max without (instance, pod) (vault_drift_check_interval_seconds)",
            "> 1 * max without (instance, pod) (vault_drift_check_interval_seconds)",
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
            'vault_drift_audience_alert_level{level="critical"}) == 1',
            'vault_drift_audience_alert_level{level="warning"}) == 1',
        ),
        (
            "the critical tier keeps each replica apart",
            "replicas.test.yml",
            'max without (instance, pod) (vault_drift_audience_alert_level{level="critical"})',
            'max without (pod) (vault_drift_audience_alert_level{level="critical"})',
        ),
        (
            "the drift tiers join every replica's reason",
            "replicas.test.yml",
            "topk by (audience, namespace, provider) (1,",
            "(",
        ),
        ("no leader pages after 2 minutes", "replicas.test.yml", "for: 3m", "for: 2m"),
        ("no leader pages after 4 minutes", "replicas.test.yml", "for: 3m", "for: 4m"),
        ("a split brain pages after 1 minute", "replicas.test.yml", "for: 2m", "for: 1m"),
        ("a split brain pages after 3 minutes", "replicas.test.yml", "for: 2m", "for: 3m"),
        (
            "one leader is a split brain",
            "replicas.test.yml",
            "(vault_drift_leader == 1) > 1",
            "(vault_drift_leader == 1) > 0",
        ),
        (
            "drift alerts lose their alert_reason",
            "exposure.test.yml",
            "group_left (alert_reason)",
            "group_left ()",
        ),
        (
            "no fallback for an exporter without alert_reason",
            "drift.test.yml",
            '"alert_reason", "unknown"',
            '"no_reason", "unknown"',
        ),
        ("a stalled feed alerts after 9m", "feed.test.yml", "for: 10m", "for: 9m"),
        ("fast burn pages a little later", "slo.test.yml", "(14.4 *", "(14.6 *"),
        ("fast burn pages a little sooner", "slo.test.yml", "(14.4 *", "(14.2 *"),
        ("slow burn warns a little later", "slo.test.yml", "(6 *", "(6.2 *"),
        ("slow burn warns a little sooner", "slo.test.yml", "(6 *", "(5.8 *"),
        (
            "the SLO's threshold moved to 30 minutes",
            "slo.test.yml",
            'label_replace(vector(1), "le", "900.0", "", "")',
            'label_replace(vector(1), "le", "1800.0", "", "")',
        ),
        (
            "the fast burn without its short window",
            "slo.test.yml",
            "vault_drift:revocation_slo_errors:ratio_rate5m\n              >",
            "vault_drift:revocation_slo_errors:ratio_rate1h\n              >",
        ),
        (
            "the slow burn without its short window",
            "slo.test.yml",
            "vault_drift:revocation_slo_errors:ratio_rate30m\n              >",
            "vault_drift:revocation_slo_errors:ratio_rate6h\n              >",
        ),
        (
            "the outbox alert waits 20 minutes only",
            "webhooks.test.yml",
            "(deriv(vault_drift_webhook_outbox_size[10m])) > 0\n        for: 30m",
            "(deriv(vault_drift_webhook_outbox_size[10m])) > 0\n        for: 20m",
        ),
        (
            "the outbox alert fires on a standing backlog",
            "webhooks.test.yml",
            "(deriv(vault_drift_webhook_outbox_size[10m])) > 0",
            "(deriv(vault_drift_webhook_outbox_size[10m])) >= 0",
        ),
        (
            "blocked API syncs raise the auto-sync alert",
            "exposure.test.yml",
            'vault_drift_syncs_total{trigger="auto",result="blocked"}',
            'vault_drift_syncs_total{result="blocked"}',
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


def sample_count(values: str) -> int:
    """How many samples promtool's expanding notation ('0+60x10 _x3 1 stale') stands for."""
    count = 0
    for token in values.split():
        start, _, times = token.partition("x")
        count += int(times) + (start != "_") if times else 1
    return count


def with_a_second_replica(test_file: dict) -> dict:
    """The same tests with a second replica beside each scraped target (its own `instance` and
    `pod`): it reads the same Vault, so its gauges equal the first's, and it saw no events of its
    own, so its counters stay at zero. Every expectation must hold unchanged."""
    counter = re.compile(r"^\w+_(total|count|bucket|sum)\{")
    for case in test_file["tests"]:
        series = []
        for item in case["input_series"]:
            name, values = item["series"], item["values"]
            if 'instance="' not in name:
                series.append(item)
                continue
            series.append({"series": name[:-1] + ',pod="replica-a"}', "values": values})
            second = (
                re.sub(r'instance="([^"]*)"', r'instance="\1-b"', name)[:-1] + ',pod="replica-b"}'
            )
            if counter.match(name):
                values = f"0x{sample_count(values) - 1}"
            series.append({"series": second, "values": values})
        case["input_series"] = series
    return test_file


@pytest.mark.parametrize("path", [p for p in RULE_TESTS if p.name != "replicas.test.yml"], ids=str)
def test_every_rule_test_holds_with_two_replicas(tmp_path: Path, path: Path) -> None:
    """Two scraped replicas page once: no alert or recorded series carries `instance` or `pod`,
    nothing doubles, and no join fails on the duplicate (a many-to-many error fires nothing)."""
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    (tmp_path / "tests" / "alerts").mkdir(parents=True)
    copy = tmp_path / "tests" / "alerts" / path.name
    copy.write_text(yaml.safe_dump(with_a_second_replica(yaml.safe_load(path.read_text()))))
    result = run(require_tool("promtool"), "test", "rules", copy, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sample_count_reads_promtools_notation() -> None:
    assert sample_count("0+60x10") == 11
    assert sample_count("_x3 1 stale") == 5
    assert sample_count("1x59 0x11") == 72


def test_every_alert_is_tested_silent_and_firing() -> None:
    firing: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if not check.get("exp_alerts"):
                    silent.add(check["alertname"])
                for alert in check.get("exp_alerts") or []:
                    # Exact labels and all four annotations on every firing expectation.
                    severity = alert["exp_labels"]["severity"]
                    assert severity in SEVERITIES[check["alertname"]]
                    firing.add((check["alertname"], severity))
                    assert set(alert["exp_annotations"]) == {
                        "summary",
                        "description",
                        "runbook_url",
                        "dashboard_url",
                    }
    assert firing == {(name, s) for name, severities in SEVERITIES.items() for s in severities}
    assert silent == set(SEVERITIES)


@pytest.mark.parametrize("name", sorted(SEVERITIES))
def test_alert_labels_annotations_and_runbook(name: str) -> None:
    rules = alerting_rules()[name]
    assert {rule["labels"]["severity"] for rule in rules} == SEVERITIES[name]
    for rule in rules:
        assert set(rule["labels"]) == {"severity"}
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
        assert "{{" not in annotations["summary"], "summary is a static sentence"
        assert "{{" in annotations["description"]
        assert annotations["runbook_url"] == RUNBOOK_BASE + name.lower()
        assert re.match(r"https?://[^/\s]+/d/vault-drift-", annotations["dashboard_url"])
    # The anchor exists: a "## VaultDriftX" heading renders as #vaultdriftx on GitHub.
    headings = re.findall(r"^## (\S+)\s*$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    assert name in headings


def test_the_revocation_slo_is_set_in_one_place() -> None:
    """The 15 minutes (the histogram bound) and the 99 % each appear once in the rules."""
    text = ALERTS.read_text()
    assert text.count('"900.0"') == 1 and "le=" not in text
    assert text.count("0.99") == 1
    rules = alerting_rules()["VaultDriftRevocationSLOBurn"]
    for rule in rules:
        assert "vault_drift:revocation_slo:objective" in rule["expr"]
        assert "for" not in rule, "the short window, not a `for`, confirms the burn"


def test_drift_tiers_come_from_the_level_gauge_and_skip_ignored() -> None:
    rules = alerting_rules()
    assert set(rules) == set(SEVERITIES)
    for name, level in (
        ("VaultDriftInfo", "info"),
        ("VaultDriftWarning", "warning"),
        ("VaultDriftCritical", "critical"),
    ):
        [rule] = rules[name]
        expr = rule["expr"]
        level_series = f'vault_drift_audience_alert_level{{level="{level}"}}'
        assert f"max without (instance, pod) ({level_series}) == 1" in expr
        assert "vault_drift_audience_ignored == 1" in expr
        assert "group_left (alert_reason)" in expr
        # A long `for` would restart from zero when Prometheus restarts.
        assert "for" not in rule


def test_alertmanager_config_is_valid() -> None:
    result = run(require_tool("amtool"), "check-config", ALERTMANAGER)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=VaultDriftCritical", "severity=critical", "audience=lms-viewer"], "pager"),
        # A critical drift pages whatever its reason: an exposure, an outage, or unknown.
        (["alertname=VaultDriftCritical", "severity=critical", "alert_reason=extra"], "pager"),
        (["alertname=VaultDriftCritical", "severity=critical", "alert_reason=missing"], "pager"),
        (["alertname=VaultDriftCritical", "severity=critical", "alert_reason=unknown"], "pager"),
        (["alertname=VaultDriftWarning", "severity=warning", "alert_reason=extra"], "chat"),
        (["alertname=VaultDriftRevocationSLOBurn", "severity=critical"], "pager"),
        (["alertname=VaultDriftRevocationSLOBurn", "severity=warning"], "chat"),
        (["alertname=VaultDriftAutoSyncBlocked", "severity=warning"], "chat"),
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
    assert critical["source_matchers"] == [
        'severity="critical"',
        'alertname!="VaultDriftRevocationSLOBurn"',
    ]
    assert critical["target_matchers"] == ['severity=~"warning|info"']
    assert "audience" in critical["equal"]
    burn = config["inhibit_rules"][1]  # the fast burn silences the slow one
    assert burn["source_matchers"] == [
        'alertname="VaultDriftRevocationSLOBurn"',
        'severity="critical"',
    ]
    assert burn["target_matchers"] == [
        'alertname="VaultDriftRevocationSLOBurn"',
        'severity="warning"',
    ]


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
