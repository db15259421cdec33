"""The committed Grafana dashboards: their structure, and every query run on a real Prometheus.

Two live setups, both a real Prometheus (Debian ``prometheus``) scraping every second with
alerts.yml loaded:
- a stand-in exporter serving fixtures/sample.prom (every metric, drift included), which
  checks the harness itself and that every panel returns data when every metric exists;
- the real ``vault-drift demo`` (sample Vault DB + simulated Cloudflare), which checks the
  queries against the exposition users actually get, scraped once in each protocol
  (OpenMetrics 1.0.0 and the text format 0.0.4).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml
from promstack import (
    BUILTIN_VARIABLES,
    ROOT,
    SCRAPE_PROTOCOLS,
    PanelQuery,
    Prometheus,
    VariableQuery,
    all_panels,
    free_port,
    load_dashboards,
    panel_queries,
    parse_label_values,
    run_prometheus,
    stop_process,
    substitute,
    variable_queries,
    wait_until,
)

SAMPLE = Path(__file__).parent / "fixtures" / "sample.prom"
DASHBOARDS = load_dashboards()
PANEL_QUERIES = panel_queries()
VARIABLE_QUERIES = variable_queries()
EXPECTED_UIDS = {
    "vault-drift-overview.json": "vault-drift-overview",
    "vault-drift-audiences.json": "vault-drift-audiences",
    "vault-drift-audience.json": "vault-drift-audience",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Panels allowed to be empty on the demo exporter, with the reason: their series appear only
# after events the demo has not had yet. Every other panel must return at least one series,
# and every query, these included, must parse.
NEVER_SYNCED = "no demo audience has had a successful sync yet"
EMPTY_ON_DEMO: dict[str, str] = {
    "vault-drift-audience/Last sync/A": NEVER_SYNCED,
    "vault-drift-audiences/Audiences/J": NEVER_SYNCED,
    "vault-drift-audience/Syncs by result (all audiences)/A": "no sync attempt yet",
    "vault-drift-overview/Syncs by trigger and result/A": "no sync attempt yet",
    "vault-drift-overview/Mails/A": "the demo has no SMTP server configured",
    "vault-drift-overview/Change feed: lag/A": "no audit-log entry yet: the demo's first edit comes later",
    "vault-drift-audiences/Exemptions ending within 7 days/A": "the demo makes no exemption",
    "vault-drift-audiences/Exemptions ending within 7 days/B": "the demo makes no exemption",
}


def variables_of(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


# --- structure --------------------------------------------------------------------------


def test_the_three_dashboards_have_fixed_unique_uids() -> None:
    assert {name: d["uid"] for name, d in DASHBOARDS.items()} == EXPECTED_UIDS


@pytest.mark.parametrize("name", sorted(EXPECTED_UIDS))
def test_dashboard_uses_the_datasource_variable_everywhere(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["schemaVersion"] >= 36
    variables = variables_of(dashboard)
    datasource = variables["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    panels = list(all_panels(dashboard))
    assert panels
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vault-drift-overview.json", {"datasource", "job", "namespace"}),
        ("vault-drift-audiences.json", {"datasource", "namespace", "audience"}),
        ("vault-drift-audience.json", {"datasource", "namespace", "audience"}),
    ],
)
def test_dashboard_template_variables(name: str, expected: set[str]) -> None:
    variables = variables_of(DASHBOARDS[name])
    assert set(variables) == expected
    for variable in variables.values():
        if variable["type"] == "query":
            selector, label = parse_label_values(variable["definition"])
            assert label == variable["name"]
            assert selector.startswith("vault_drift_audience_status")
    # The detail dashboard shows one audience; the table filters by several.
    if "audience" in variables:
        assert variables["audience"]["multi"] is (name == "vault-drift-audiences.json")


def test_panels_allowed_empty_on_demo_exist() -> None:
    assert set(EMPTY_ON_DEMO) <= {q.id for q in PANEL_QUERIES}


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=lambda q: q.id)
def test_panel_query_uses_only_known_variables(query: PanelQuery) -> None:
    dashboard = next(d for d in DASHBOARDS.values() if d["uid"] == query.dashboard)
    known = dict.fromkeys(variables_of(dashboard), "x") | BUILTIN_VARIABLES
    assert "$" not in substitute(query.expr, known)


@pytest.mark.parametrize("name", sorted(EXPECTED_UIDS))
def test_importing_asks_for_the_datasource_and_declares_what_it_needs(name: str) -> None:
    """Grafana's import form reads ``__inputs`` (it asks for a Prometheus datasource) and
    ``__requires``; the choice becomes the datasource variable's default, and every panel
    keeps reading ``${datasource}``, so provisioning from the file works unchanged."""
    dashboard = DASHBOARDS[name]
    [source] = dashboard["__inputs"]
    assert source["name"] == "DS_PROMETHEUS"
    assert (source["type"], source["pluginId"]) == ("datasource", "prometheus")
    assert variables_of(dashboard)["datasource"]["current"]["value"] == "${DS_PROMETHEUS}"
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    panel_types = {("panel", p["type"]) for p in all_panels(dashboard) if p["type"] != "row"}
    assert required == {("grafana", "grafana"), ("datasource", "prometheus")} | panel_types
    # What the import does: every ${DS_...} placeholder is one Grafana replaces.
    imported = json.dumps(dashboard).replace("${DS_PROMETHEUS}", "chosen-uid")
    assert "${DS_" not in imported


def test_the_scrape_job_is_a_variable_of_every_dashboard_that_names_it() -> None:
    naming = {q.dashboard for q in PANEL_QUERIES if re.search(r"\bjob\b", q.expr)}
    assert naming, "some panel shows the scrape job's health"
    for dashboard in DASHBOARDS.values():
        variables = variables_of(dashboard)
        if dashboard["uid"] not in naming:
            assert "job" not in variables, dashboard["uid"]
            continue
        job = variables["job"]
        assert job["type"] == "textbox"
        assert job["query"] == job["current"]["value"] == "vault-drift"
    for query in PANEL_QUERIES:
        assert "vault-drift" not in query.expr, query.id
        for matcher in re.findall(r"\bjob\s*=~?\s*\"([^\"]*)\"", query.expr):
            assert matcher == "$job", query.id


def recording_rules() -> set[str]:
    rules = yaml.safe_load((ROOT / "alerts.yml").read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def rules_read(exprs: list[str]) -> set[str]:
    return {name for e in exprs for name in re.findall(r"\bvault_drift:[\w:]+", e)}


def test_each_panel_names_the_recording_rules_it_needs() -> None:
    defined = recording_rules()
    used: set[str] = set()
    for dashboard in DASHBOARDS.values():
        for panel in all_panels(dashboard):
            needed = rules_read([t["expr"] for t in panel.get("targets", [])])
            assert needed <= defined, panel["title"]
            named = rules_read([panel.get("description", "")])
            assert named == needed, f"{dashboard['uid']}/{panel['title']}"
            if needed:
                assert "alerts.yml" in panel["description"], panel["title"]
            used |= needed
    readme = (ROOT / "README.md").read_text()
    monitoring = readme[readme.index("## Monitoring") :]
    monitoring = monitoring[: monitoring.index("\n## ", 1)]
    assert used and used <= rules_read([monitoring])


def test_audiences_table_links_each_audience_to_its_detail_dashboard() -> None:
    table = next(
        p for p in DASHBOARDS["vault-drift-audiences.json"]["panels"] if p["type"] == "table"
    )
    links = [
        link
        for override in table["fieldConfig"]["overrides"]
        if override["matcher"] == {"id": "byName", "options": "audience"}
        for prop in override["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert len(links) == 1
    url = links[0]["url"]
    assert url.startswith("/d/vault-drift-audience/")
    assert "var-audience=${__value.raw}" in url
    assert "${datasource:queryparam}" in url
    # The columns the issue asks for, after the table's transformations.
    renamed = next(t for t in table["transformations"] if t["id"] == "organize")["options"]
    assert {"Status", "Missing", "Extra", "Drift age", "Level", "Ignored", "Last check"} <= set(
        renamed["renameByName"].values()
    )


def test_alert_dashboard_urls_point_at_committed_dashboards() -> None:
    text = (ROOT / "alerts.yml").read_text()
    uids = set(re.findall(r"https?://[^/\s]+/d/([\w-]+)/", text))
    assert uids == {"vault-drift-audience", "vault-drift-overview"}
    assert uids <= set(EXPECTED_UIDS.values())
    assert "var-audience={{ $labels.audience | urlquery }}" in text


# --- live: a real Prometheus --------------------------------------------------------------


def dashboard_values(dashboard_uid: str, audience: str) -> dict[str, str]:
    """Variable values as Grafana would send them: "All" (.*) where allowed, else ``audience``;
    text boxes keep their default."""
    dashboard = next(d for d in DASHBOARDS.values() if d["uid"] == dashboard_uid)
    values = dict(BUILTIN_VARIABLES)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            values[variable["name"]] = ".*" if variable["includeAll"] else audience
        elif variable["type"] == "textbox":  # its default: the test Prometheus's job name
            values[variable["name"]] = variable["query"]
    return values


def drifting_audience(prometheus: Prometheus) -> str:
    """The audience the detail dashboard is opened on: the first one in drift."""
    found = prometheus.vector('vault_drift_audience_status{status="drift"} == 1')
    assert found, "the exporter shows no audience in drift"
    return sorted(series["metric"]["audience"] for series in found)[0]


def check_panel_query(prometheus: Prometheus, query: PanelQuery, must_have_data: bool) -> None:
    expr = substitute(query.expr, dashboard_values(query.dashboard, drifting_audience(prometheus)))
    response = prometheus.query(expr)
    assert response.status_code == 200, f"{expr}\n{response.text}"
    assert response.json()["status"] == "success"
    if must_have_data:
        assert response.json()["data"]["result"], f"no data for {query.id}: {expr}"


def check_variable_query(prometheus: Prometheus, variable: VariableQuery) -> None:
    selector, label = parse_label_values(variable.query)
    selector = substitute(selector, {"namespace": ".*"})
    values = prometheus.label_values(label, selector)
    assert values, f"{variable.dashboard} variable {variable.name} has no values"
    if variable.name == "audience":
        assert drifting_audience(prometheus) in values


class StandInHandler(BaseHTTPRequestHandler):
    """Serves fixtures/sample.prom as /metrics, like an exporter with every metric present."""

    body = SAMPLE.read_bytes()

    def do_GET(self) -> None:
        body = self.body
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def second_replica(exposition: str) -> str:
    """What a second replica beside the stand-in exports in the worst case (a split brain, or
    the old leader's last scrape beside the new leader's first check): the same gauges, audience
    series included (both read one Vault), and counters and histograms at zero (the events are
    the other replica's)."""
    counters = re.findall(r"^# TYPE (\w+) (?:counter|histogram)$", exposition, flags=re.MULTILINE)
    family = re.compile(rf"^({'|'.join(counters)})(_total|_bucket|_count|_sum)?(\{{| )")
    lines = []
    for line in exposition.splitlines():
        if family.match(line):
            line = line.rsplit(" ", 1)[0] + " 0.0"
        lines.append(line)
    return "\n".join(lines) + "\n"


@contextmanager
def stand_in(body: bytes) -> Iterator[str]:
    """A stand-in exporter serving ``body`` on loopback: its host:port."""
    handler = type("Handler", (StandInHandler,), {"body": body})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def stand_in_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with (
        stand_in(SAMPLE.read_bytes()) as target,
        run_prometheus(target, tmp_path_factory.mktemp("prometheus-stand-in")) as prom,
    ):
        yield prom


@pytest.fixture(scope="module")
def two_replicas_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus scraping two replicas of the stand-in under one job."""
    with (
        stand_in(SAMPLE.read_bytes()) as first,
        stand_in(second_replica(SAMPLE.read_text()).encode()) as second,
        run_prometheus([first, second], tmp_path_factory.mktemp("prometheus-two")) as prom,
    ):
        yield prom


@pytest.fixture(scope="module")
def demo_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running ``vault-drift demo`` (host:port) once it shows drift."""
    binary = ROOT / ".venv" / "bin" / "vault-drift"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: install the project (make test does)")
    workdir = tmp_path_factory.mktemp("demo")
    port = free_port()
    log = workdir / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary), "demo", "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            # The demo's sample database goes to a temporary directory: keep it in ours.
            env={**os.environ, "TMPDIR": str(workdir)},
        )
    try:

        def shows_drift() -> bool:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            return bool(
                re.search(r'vault_drift_audience_status\{[^}]*status="drift"[^}]*\} 1', text)
            )

        wait_until("vault-drift demo to expose a drifting audience", shows_drift, 30, log, proc)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture(scope="module", params=sorted(SCRAPE_PROTOCOLS))
def demo_prometheus(
    request: pytest.FixtureRequest, demo_target: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """Prometheus scraping the demo in one scrape protocol (every demo test runs in each)."""
    workdir = tmp_path_factory.mktemp(f"prometheus-{request.param}")
    with run_prometheus(demo_target, workdir, protocol=request.param) as prom:
        yield prom


def test_demo_answers_in_the_scrape_protocol(demo_prometheus: Prometheus) -> None:
    """The demo answers in the protocol Prometheus asks for, Prometheus reads all of it, and
    the counters and the histogram come without ``_created`` series."""
    assert demo_prometheus.protocol and demo_prometheus.proxy and demo_prometheus.proxy.last
    scrape = demo_prometheus.proxy.last
    media_type = SCRAPE_PROTOCOLS[demo_prometheus.protocol][1]
    assert scrape.content_type.split(";")[0] == media_type, scrape.content_type
    if media_type == "application/openmetrics-text":
        assert scrape.body.count("# EOF") == 1 and scrape.body.endswith("\n# EOF\n")
    else:
        assert "# EOF" not in scrape.body
    targets = requests.get(f"{demo_prometheus.url}/api/v1/targets", timeout=10).json()
    [target] = targets["data"]["activeTargets"]
    assert (target["health"], target["lastError"]) == ("up", "")
    for family in (
        "vault_drift_checks_total",
        "vault_drift_check_duration_seconds_bucket",
        "vault_drift_cloudflare_requests_total",
        "vault_drift_build_info",
        "vault_drift_audience_status",
    ):
        assert demo_prometheus.vector(family), family
    assert not demo_prometheus.vector('{__name__=~"vault_drift_.+_created"}')


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=lambda q: q.id)
def test_panel_query_on_stand_in(stand_in_prometheus: Prometheus, query: PanelQuery) -> None:
    check_panel_query(stand_in_prometheus, query, must_have_data=True)


@pytest.mark.parametrize("variable", VARIABLE_QUERIES, ids=lambda v: f"{v.dashboard}/{v.name}")
def test_variable_query_on_stand_in(
    stand_in_prometheus: Prometheus, variable: VariableQuery
) -> None:
    check_variable_query(stand_in_prometheus, variable)


def test_stand_in_audiences_table_rows(stand_in_prometheus: Prometheus) -> None:
    """The recording rules the table reads fold the StateSets into the documented codes."""
    codes = {
        s["metric"]["audience"]: float(s["value"][1])
        for s in stand_in_prometheus.vector("vault_drift:audience_status:code")
    }
    assert codes == {
        "lms-viewer": 2,
        "lms-admin": 1,
        "dev-tools": 2,
        "sales-app": 3,
        "hr-portal": 0,
    }
    levels = {
        s["metric"]["audience"]: float(s["value"][1])
        for s in stand_in_prometheus.vector("vault_drift:audience_alert_level:code")
    }
    assert levels == {
        "lms-viewer": 2,
        "lms-admin": 0,
        "dev-tools": 1,
        "sales-app": 0,
        "hr-portal": 0,
    }


# Panels that show each replica on its own, on purpose.
PER_REPLICA = {
    "vault-drift-overview/Exporter/A": "scrape health of each target",
    "vault-drift-overview/Exporter/B": "how many replicas run each version",
}


def without_replica(result: list[dict]) -> list[tuple[tuple[tuple[str, str], ...], str]]:
    return sorted(
        (
            tuple(sorted((k, v) for k, v in s["metric"].items() if k not in ("instance", "pod"))),
            s["value"][1],
        )
        for s in result
    )


@pytest.mark.parametrize(
    "query", [q for q in PANEL_QUERIES if q.id not in PER_REPLICA], ids=lambda q: q.id
)
def test_panel_query_is_the_same_with_two_replicas(
    stand_in_prometheus: Prometheus, two_replicas_prometheus: Prometheus, query: PanelQuery
) -> None:
    """A second replica changes no panel: no audience twice, no count doubled, no series per
    instance. Both Prometheus answer for the same instant, so time() is the same."""
    expr = substitute(
        query.expr, dashboard_values(query.dashboard, drifting_audience(stand_in_prometheus))
    )

    def answers() -> list[list[tuple[tuple[tuple[str, str], ...], str]]]:
        at = time.time() - 2
        out = [p.query(expr, at=at) for p in (stand_in_prometheus, two_replicas_prometheus)]
        assert all(a.status_code == 200 for a in out), [a.text for a in out]
        return [without_replica(a.json()["data"]["result"]) for a in out]

    # A recording rule over a range (the SLO's rates) needs a few evaluations after a start.
    deadline = time.monotonic() + 15
    while len({len(r) for r in answers()}) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    one, two = answers()
    assert [labels for labels, _ in two] == [labels for labels, _ in one], expr
    # Recorded ages were computed at each Prometheus' own evaluation: equal to a second.
    for (_, a), (_, b) in zip(one, two, strict=True):
        same = a == b or math.isclose(float(a), float(b), rel_tol=1e-3)
        assert same, (expr, a, b)


def test_second_replica_keeps_gauges_and_zeroes_counters() -> None:
    text = second_replica(SAMPLE.read_text())
    assert (
        'vault_drift_audience_status{audience="lms-viewer",namespace="lms",provider="cloudflare_access",status="drift"} 1.0'
        in text
    )
    assert re.search(r"^vault_drift_checks_total\{.*\} 0\.0$", text, flags=re.MULTILINE)
    assert re.search(
        r"^vault_drift_check_duration_seconds_bucket\{.*\} 0\.0$", text, flags=re.MULTILINE
    )
    assert not re.search(r"^vault_drift_checks_total\{.*\} [1-9]", text, flags=re.MULTILINE)


def test_per_replica_panels_exist() -> None:
    assert PER_REPLICA.keys() <= {q.id for q in PANEL_QUERIES}


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=lambda q: q.id)
def test_panel_query_on_demo(demo_prometheus: Prometheus, query: PanelQuery) -> None:
    check_panel_query(demo_prometheus, query, must_have_data=query.id not in EMPTY_ON_DEMO)


@pytest.mark.parametrize("variable", VARIABLE_QUERIES, ids=lambda v: f"{v.dashboard}/{v.name}")
def test_variable_query_on_demo(demo_prometheus: Prometheus, variable: VariableQuery) -> None:
    check_variable_query(demo_prometheus, variable)


def test_demo_drift_raises_the_alert_of_its_level(demo_prometheus: Prometheus) -> None:
    """alerts.yml on the real exposition: each drifting, not ignored audience fires the alert
    of its level, with the counts of its gauges in the rendered description."""
    levels = demo_prometheus.vector(
        'vault_drift_audience_alert_level{level!="none"} == 1'
        " unless on (audience, namespace, provider) (vault_drift_audience_ignored == 1)"
    )
    assert levels, "the demo has no drifting, not ignored audience"
    alerts = requests.get(f"{demo_prometheus.url}/api/v1/alerts", timeout=10).json()["data"]
    firing = {
        (a["labels"]["alertname"], a["labels"].get("audience")): a
        for a in alerts["alerts"]
        if a["state"] == "firing"
    }
    for series in levels:
        labels = series["metric"]
        audience = labels["audience"]
        name = "VaultDrift" + labels["level"].capitalize()
        assert (name, audience) in firing, f"{name} not firing for {audience}: {sorted(firing)}"
        alert = firing[(name, audience)]
        assert alert["labels"]["severity"] == labels["level"]
        assert alert["labels"]["namespace"] == labels["namespace"]
        selector = f'{{audience="{audience}"}}'
        missing = demo_prometheus.vector(f"vault_drift_audience_members_missing{selector}")
        extra = demo_prometheus.vector(f"vault_drift_audience_members_extra{selector}")
        counts = f"{missing[0]['value'][1]} missing in Cloudflare, {extra[0]['value'][1]} extra"
        assert counts in alert["annotations"]["description"]
        assert f"var-audience={audience}" in alert["annotations"]["dashboard_url"]
    # A healthy demo exporter is neither stale nor down.
    assert not {n for n, _ in firing} & {"VaultDriftCheckStale", "VaultDriftExporterDown"}
