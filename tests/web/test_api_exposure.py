"""Exposure through the API: alert_reason and the side onsets in the documents, the extra
thresholds and remove_only in the settings, the counters on /metrics."""

from __future__ import annotations

from fastapi.testclient import TestClient
from support import FixedClock
from support.web import READ, auth


def item(client: TestClient, audience: str = "lms-instructors") -> dict:  # type: ignore[type-arg]
    document = client.get("/iam/drift", headers=auth(READ)).json()
    return next(i for i in document["items"] if i["audience"] == audience)


def test_the_document_names_the_side_that_sets_the_level(
    client: TestClient, clock: FixedClock
) -> None:
    first = item(client)
    assert first["missing_since"] == first["extra_since"] == "2026-11-25T10:00:00Z"
    assert (first["alert_level"], first["alert_reason"]) == ("info", "extra")
    clock.advance(minutes=16)  # the extra member is past its 15m threshold; missing are not
    assert (item(client)["alert_level"], item(client)["alert_reason"]) == ("warning", "extra")
    clock.advance(minutes=45)  # 61m: an exposure is critical after 1h, an outage only at 24h
    assert (item(client)["alert_level"], item(client)["alert_reason"]) == ("critical", "extra")
    full = client.get("/iam/drift/lms-instructors", headers=auth(READ)).json()
    assert full["alert_reason"] == "extra" and full["extra_since"] == "2026-11-25T10:00:00Z"
    synced = item(client, "administrators")
    assert synced["alert_reason"] is None and synced["missing_since"] is None


def test_extra_thresholds_and_remove_only_are_settings(client: TestClient) -> None:
    defaults = client.get("/iam/drift/settings", headers=auth(READ)).json()
    assert defaults["extra_warning_threshold_seconds"] == 900
    assert defaults["extra_critical_threshold_seconds"] == 3600
    saved = client.put(
        "/iam/drift/settings",
        json={
            "auto_sync": "remove_only",
            "extra_warning_threshold_seconds": 300,
            "extra_critical_threshold_seconds": 1800,
        },
        headers=auth(),
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["auto_sync"] == "remove_only"
    assert (
        client.get("/iam/drift/settings", headers=auth()).json()["extra_critical_threshold_seconds"]
        == 1800
    )
    bad = client.put(
        "/iam/drift/settings",
        json={"extra_warning_threshold_seconds": 59, "auto_sync": "revoke"},
        headers=auth(),
    )
    assert bad.status_code == 422
    assert set(bad.json()["detail"]) == {"extra_warning_threshold_seconds", "auto_sync"}
    crossed = client.put(
        "/iam/drift/settings", json={"extra_warning_threshold_seconds": 1800}, headers=auth()
    )
    assert crossed.status_code == 422
    assert "extra_warning_threshold_seconds" in crossed.json()["detail"]


def test_remove_only_after_a_forced_check_revokes_and_the_histogram_shows_it(
    client: TestClient, clock: FixedClock
) -> None:
    client.put("/iam/drift/settings", json={"auto_sync": "remove_only"}, headers=auth())
    clock.advance(minutes=20)
    answer = client.post("/iam/drift/check", json={"audience": "lms-instructors"}, headers=auth())
    assert answer.json()["drift_details"]["extra"] == []
    assert answer.json()["drift_details"]["missing_total"] == 2  # never added by remove_only
    text = client.get("/metrics").text
    lms = 'namespace="lms",provider="cloudflare_access"'
    assert f'vault_drift_revocation_duration_seconds_bucket{{le="900.0",{lms}}} 0.0' in text
    assert f'vault_drift_revocation_duration_seconds_bucket{{le="1800.0",{lms}}} 1.0' in text
    assert f"vault_drift_revocation_duration_seconds_sum{{{lms}}} 1200.0" in text
    exposure = (
        'vault_drift_audience_extra_member_seconds_total{audience="lms-instructors",'
        f"{lms}}} 1200.0"
    )
    assert exposure in text
