"""A real Prometheus on loopback for the monitoring tests, and the dashboards' queries.

Nothing is faked on the Prometheus side: the Debian ``prometheus`` binary scrapes a target
every second and evaluates ``alerts.yml`` (so the recording rules the dashboards read exist),
and the tests send the dashboards' queries to its HTTP API as Grafana would.

A scrape protocol is chosen with ``scrape_protocols`` from Prometheus 2.49 on; the Debian
Prometheus (2.42) has no such field (its config rejects it) and always asks for OpenMetrics
first. So ``run_prometheus(..., protocol=...)`` puts a loopback ``ScrapeProxy`` between
Prometheus and the target: it asks the target with the Accept header Prometheus 2.49+ sends
for that protocol, and hands the answer back as it is, so Prometheus parses the format the
target chose (by its Content-Type), as it would with ``scrape_protocols``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from support import free_port, require_tool

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
ALERTS = ROOT / "alerts.yml"

# Grafana's built-in interval variables, replaced by values that suit a 1 s scrape interval.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
    "__interval_ms": "15000",
}


# The Accept header of a Prometheus (2.49+) configured with ``scrape_protocols: [<name>]``:
# the protocol's own header at q=0.5 (four protocols known, so the first weight is 5), then
# anything at q=0.4. Value: (that header, the media type the answer must have).
SCRAPE_PROTOCOLS = {
    "OpenMetricsText1.0.0": (
        "application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.4",
        "application/openmetrics-text",
    ),
    "PrometheusText0.0.4": ("text/plain;version=0.0.4;q=0.5,*/*;q=0.4", "text/plain"),
}


@dataclass(frozen=True)
class Scrape:
    content_type: str
    body: str


class ScrapeProxy:
    """Loopback HTTP proxy to ``target`` that asks with one scrape protocol's Accept header,
    relays status, Content-Type and body unchanged, and keeps the last answer."""

    def __init__(self, target: str, protocol: str) -> None:
        accept = SCRAPE_PROTOCOLS[protocol][0]
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = requests.get(
                    f"http://{target}{self.path}", headers={"Accept": accept}, timeout=5
                )
                content_type = answer.headers.get("Content-Type", "")
                proxy.last = Scrape(content_type, answer.text)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.last: Scrape | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @contextmanager
    def running(self) -> Iterator[ScrapeProxy]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)


def wait_until(
    what: str,
    probe: Callable[[], Any],
    timeout: float,
    log: Path | None = None,
    process: subprocess.Popen[bytes] | None = None,
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` and the log tail
    on timeout, or at once if ``process`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} while waiting for {what}\n{tail(log)}")
        try:
            result = probe()
            if result:
                return result
        except (requests.RequestException, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} ({last_error})\n{tail(log)}")


def tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Prometheus:
    url: str
    protocol: str | None = None  # the scrape protocol pinned by ``proxy``, if any
    proxy: ScrapeProxy | None = None

    def query(self, expr: str, at: float | None = None) -> requests.Response:
        params: dict[str, str | float] = {"query": expr}
        if at is not None:
            params["time"] = at
        return requests.get(f"{self.url}/api/v1/query", params=params, timeout=10)

    def vector(self, expr: str) -> list[dict[str, Any]]:
        response = self.query(expr)
        assert response.status_code == 200, f"{expr}: HTTP {response.status_code} {response.text}"
        body = response.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def label_values(self, label: str, match: str) -> list[str]:
        """What Grafana's ``label_values(match, label)`` variable query asks Prometheus."""
        response = requests.get(
            f"{self.url}/api/v1/label/{label}/values",
            params={"match[]": match, "start": time.time() - 3600, "end": time.time()},
            timeout=10,
        )
        assert response.status_code == 200, f"{match}: HTTP {response.status_code} {response.text}"
        return list(response.json()["data"])


@contextmanager
def run_prometheus(
    target: str | list[str], workdir: Path, timeout: float = 30, protocol: str | None = None
) -> Iterator[Prometheus]:
    """Start Prometheus scraping ``target`` (host:port, or several: replicas of one job) every
    second with alerts.yml loaded, with its own Accept header, or through a ``ScrapeProxy``
    pinning ``protocol`` (one target only).

    Yields once every recording rule the dashboards use has data and ``rate()`` over the
    last minute has enough samples; always stops Prometheus afterwards.
    """
    if protocol is None:
        with _run_prometheus(target, workdir, timeout) as prometheus:
            yield prometheus
        return
    assert isinstance(target, str), "a pinned protocol proxies one target"
    with (
        ScrapeProxy(target, protocol).running() as proxy,
        _run_prometheus(proxy.address, workdir, timeout) as prometheus,
    ):
        prometheus.protocol, prometheus.proxy = protocol, proxy
        yield prometheus


@contextmanager
def _run_prometheus(target: str | list[str], workdir: Path, timeout: float) -> Iterator[Prometheus]:
    targets = [target] if isinstance(target, str) else target
    binary = require_tool("prometheus")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ALERTS, workdir / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "vault-drift", "static_configs": [{"targets": targets}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_until(
            "Prometheus to be ready",
            lambda: requests.get(f"{prometheus.url}/-/ready", timeout=2).status_code == 200,
            timeout,
            log,
            proc,
        )
        wait_until(
            "four successful scrapes and the recording rules",
            lambda: (
                prometheus.vector('sum_over_time(up{job="vault-drift"}[1m]) >= 4')
                and prometheus.vector("vault_drift:audience_status:code")
                and prometheus.vector("vault_drift:audiences:by_namespace_status")
            ),
            timeout,
            log,
            proc,
        )
        yield prometheus
    finally:
        stop_process(proc)


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}/{self.panel}/{self.ref_id}"


@dataclass(frozen=True)
class VariableQuery:
    dashboard: str
    name: str
    query: str
    include_all: bool


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every committed dashboard, by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Panels, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries() -> list[PanelQuery]:
    out = []
    for dashboard in load_dashboards().values():
        for panel in all_panels(dashboard):
            for target in panel.get("targets", []):
                out.append(
                    PanelQuery(dashboard["uid"], panel["title"], target["refId"], target["expr"])
                )
    return out


def variable_queries() -> list[VariableQuery]:
    out = []
    for dashboard in load_dashboards().values():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            out.append(
                VariableQuery(dashboard["uid"], variable["name"], text, variable["includeAll"])
            )
    return out


LABEL_VALUES = re.compile(r"^label_values\((?P<match>.+),\s*(?P<label>\w+)\)$")
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def parse_label_values(query: str) -> tuple[str, str]:
    """``label_values(selector, label)`` -> (selector, label)."""
    found = LABEL_VALUES.match(query.strip())
    assert found, f"unsupported variable query {query!r}"
    return found["match"], found["label"]


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` like Grafana; every variable must be known."""

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        assert name in values, f"unknown template variable ${name} in {expr!r}"
        return values[name]

    return VARIABLE.sub(replace, expr)
