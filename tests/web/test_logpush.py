"""``POST /iam/drift/feed/logpush``: Cloudflare Logpush deliveries of the audit-log dataset,
and what ``/metrics`` shows of the feed."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import T0, FixedClock, make_client
from support.web import ADMIN, READ, auth, services_for

from exporter.demo.sample import build_sample
from exporter.demo.simulator import CloudflareSimulator
from exporter.demo.simulator_logpush import delivery_body, first_delivery, logpush_record
from exporter.metrics import build_exposition
from exporter.service import Services, assemble
from exporter.vault import SqliteStore
from exporter.web import create_app

LOGPUSH = "logpush-token-0123456789"
URL = "/iam/drift/feed/logpush"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def simulator(clock: FixedClock) -> Iterator[CloudflareSimulator]:
    sim = CloudflareSimulator(per_page_cap=50, wall_clock=clock).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def services(tmp_path: Path, simulator: CloudflareSimulator, clock: FixedClock) -> Services:
    path = tmp_path / "vault.db"
    build_sample(path, simulator, clock())
    services = assemble(
        SqliteStore(path).open(), make_client(simulator), clock=clock, attribution=True
    )
    services.cycle.check_all("schedule")
    return services


def app_for(services: Services, clock: FixedClock, token: str | None = LOGPUSH) -> TestClient:
    web = services_for(services, clock)
    exposition, _ = build_exposition(
        lambda: services.snapshots.current,
        services.cloudflare.stats.snapshot,
        clock,
        feed=services.feed,
    )
    web = replace(web, feed=services.feed, logpush_token=token, exposition=exposition)
    return TestClient(create_app(web))


@pytest.fixture
def client(services: Services, clock: FixedClock) -> TestClient:
    return app_for(services, clock)


def edit(simulator: CloudflareSimulator, name: str, email: str) -> dict:  # type: ignore[type-arg]
    target = next(g for g in simulator.groups() if g["name"] == name)
    include = [*target["include"], {"email": {"email": email}}]
    simulator.set_include(target["id"], include, by="jane@corp.example")
    return simulator.audit.entries()[-1]


def test_the_test_delivery_is_answered_200(client: TestClient) -> None:
    response = client.post(URL, content=first_delivery(), headers=auth(LOGPUSH))
    assert response.status_code == 200
    assert response.json() == {
        "entries": 0, "about_groups": 0, "checked": 0, "other": 1, "malformed": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (auth("wrong-token-0123456789"), 401), (auth(ADMIN), 403), (auth(READ), 403)],
)
def test_only_the_logpush_token_is_accepted(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    assert client.post(URL, content=first_delivery(), headers=headers).status_code == status


def test_without_the_variable_the_endpoint_is_off(services: Services, clock: FixedClock) -> None:
    off = app_for(services, clock, token=None)
    response = off.post(URL, content=first_delivery(), headers=auth(LOGPUSH))
    assert response.status_code == 401
    assert "VAULT_DRIFT_LOGPUSH_TOKEN" in response.json()["detail"]


def test_a_gzip_delivery_checks_the_audience_and_a_repeat_is_not_acted_on(
    client: TestClient, simulator: CloudflareSimulator, services: Services
) -> None:
    entry = edit(simulator, "administrators", "pushed@example.org")
    body = delivery_body([logpush_record(entry)])
    first = client.post(URL, content=body, headers=auth(LOGPUSH))
    assert first.status_code == 200
    assert first.json()["checked"] == 1
    extra = services.snapshots.current.checks["administrators"].extra
    assert [m.email for m in extra] == ["pushed@example.org"]
    again = client.post(URL, content=body, headers=auth(LOGPUSH))  # Logpush retried it
    assert again.json()["checked"] == 0
    metrics = client.get("/metrics").text
    assert 'vault_drift_feed_entries_total{source="logpush"} 1.0' in metrics
    assert "vault_drift_feed_checks_total 1.0" in metrics


def test_plain_ndjson_with_malformed_lines_keeps_the_good_ones(
    client: TestClient, simulator: CloudflareSimulator
) -> None:
    entry = edit(simulator, "developers", "plain@example.org")
    lines = [b"not json", b"[1, 2]", json.dumps(logpush_record(entry)).encode(), b""]
    response = client.post(URL, content=b"\n".join(lines), headers=auth(LOGPUSH))
    assert response.status_code == 200
    assert response.json() == {
        "entries": 1, "about_groups": 1, "checked": 1, "other": 0, "malformed": 2,
    }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [b"\x1f\x8b\x08\x00broken", b"\xff\xfe\xfa", gzip.compress(b"\xff\xfe\n", mtime=0)],
    ids=["truncated gzip", "not utf-8", "gzip of not utf-8"],
)
def test_an_unreadable_body_is_a_400(client: TestClient, body: bytes) -> None:
    response = client.post(URL, content=body, headers=auth(LOGPUSH))
    assert response.status_code == 400
    assert response.json()["error"] == "unreadable delivery"


def test_the_feed_series_on_metrics(
    client: TestClient, services: Services, clock: FixedClock
) -> None:
    assert services.feed is not None
    services.feed.poll()
    clock.advance(seconds=10)
    metrics = client.get("/metrics").text
    assert "vault_drift_feed_up 1.0" in metrics
    assert 'vault_drift_feed_entries_total{source="poll"} 0.0' in metrics
    assert "vault_drift_check_interval_seconds 900.0" in metrics


def test_the_feed_settings_through_the_api(client: TestClient) -> None:
    document = client.get("/iam/drift/settings", headers=auth(READ)).json()
    assert (document["cloudflare_feed"], document["feed_interval_seconds"]) == ("audit_log", 30)
    assert (document["feed_overlap_seconds"], document["full_check_interval_seconds"]) == (120, 900)
    saved = client.put(
        "/iam/drift/settings",
        json={"cloudflare_feed": "off", "feed_interval_seconds": 15},
        headers=auth(),
    )
    assert saved.status_code == 200
    assert (saved.json()["cloudflare_feed"], saved.json()["feed_interval_seconds"]) == ("off", 15)
    bad = client.put(
        "/iam/drift/settings",
        json={"cloudflare_feed": "push", "feed_interval_seconds": 5},
        headers=auth(),
    )
    assert bad.status_code == 422
    assert set(bad.json()["detail"]) == {"cloudflare_feed", "feed_interval_seconds"}
