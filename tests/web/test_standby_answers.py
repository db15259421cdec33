"""What a standby answers (the application, without a process)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from exporter.metrics import StandbyExposition
from exporter.web.standby import StandbyState, create_standby_app

REASON = "standby: lease held by host-a pid 7 (abcdef) until 2026-12-07T12:00:00Z"


def client() -> TestClient:
    return TestClient(create_standby_app(StandbyState(REASON), StandbyExposition()))


def test_alive_but_not_ready_naming_the_holder() -> None:
    c = client()
    assert c.get("/healthz").status_code == 200
    ready = c.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"error": "not ready", "detail": REASON}
    assert ready.headers["Retry-After"] == "5"


def test_metrics_say_standby_and_nothing_of_the_audiences() -> None:
    text = client().get("/metrics").text
    assert "vault_drift_leader 0.0" in text
    assert 'vault_drift_build_info{version="' in text
    assert "process_start_time_seconds" in text
    assert "vault_drift_audience" not in text
    om = client().get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert om.text.endswith("# EOF\n")


def test_the_api_and_the_page_name_the_leader() -> None:
    c = client()
    for method, path in [("GET", "/iam/drift"), ("POST", "/iam/drift/check"), ("GET", "/iam")]:
        answer = c.request(method, path)
        assert answer.status_code == 503, path
        assert answer.json()["error"] == "standby"
        assert "host-a pid 7 (abcdef)" in answer.json()["detail"]
    page = c.get("/")
    assert page.status_code == 503 and "host-a pid 7 (abcdef)" in page.text
    assert "text/html" in page.headers["content-type"]
