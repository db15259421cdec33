"""The container stack: docker cannot run here, so check that compose mounts exactly the files
the other monitoring tests validate, where Prometheus, Alertmanager and Grafana look for them.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from promstack import ROOT

DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def mounts(service: str) -> dict[str, Path]:
    """Container path -> host path (resolved like compose: relative to deploy/)."""
    out = {}
    for volume in COMPOSE["services"][service].get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            out[target] = (DEPLOY / source).resolve()
    return out


def flag(service: str, name: str) -> str:
    for arg in COMPOSE["services"][service]["command"]:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{service} has no --{name}")


def test_compose_services() -> None:
    assert set(COMPOSE["services"]) == {"exporter", "prometheus", "alertmanager", "grafana"}
    exporter = COMPOSE["services"]["exporter"]
    assert exporter["build"]["context"] == ".."
    assert exporter["command"] == ["demo", "--listen", "0.0.0.0:9847"]


def test_prometheus_gets_the_checked_config_and_rules() -> None:
    volumes = mounts("prometheus")
    config_path = flag("prometheus", "config.file")
    assert volumes[config_path] == DEPLOY / "prometheus.yml"
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    # rule_files are relative to the config file's directory inside the container.
    for rule_file in config["rule_files"]:
        assert volumes[str(Path(config_path).parent / rule_file)] == ROOT / "alerts.yml"
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["exporter:9847"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]


def test_alertmanager_gets_the_checked_config() -> None:
    assert (
        mounts("alertmanager")[flag("alertmanager", "config.file")] == DEPLOY / "alertmanager.yml"
    )


def test_grafana_provisions_the_committed_dashboards() -> None:
    volumes = mounts("grafana")
    provisioning = ROOT / "dashboards" / "provisioning"
    assert volumes["/etc/grafana/provisioning/datasources"] == provisioning / "datasources"
    assert volumes["/etc/grafana/provisioning/dashboards"] == provisioning / "dashboards"
    provider = yaml.safe_load((provisioning / "dashboards" / "vault-drift.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert volumes[path] == ROOT / "dashboards"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert "EXPOSE 9847" in text
    healthcheck = re.search(r"^HEALTHCHECK .*?(?=^\S)", text, flags=re.MULTILINE | re.DOTALL)
    assert healthcheck and "/healthz" in healthcheck[0] and "urllib" in healthcheck[0]
    assert 'ENTRYPOINT ["vault-drift"]' in text
    assert 'CMD ["serve", "--listen", "0.0.0.0:9847"]' in text
    # Everything the image copies exists (reports/ arrives with the reports package).
    for source in re.findall(r"^COPY (.+) \S+$", text, flags=re.MULTILINE):
        for name in source.split():
            assert name in {"pyproject.toml", "README.md", "exporter", "reports"}
