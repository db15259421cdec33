"""A Vault that cannot be read answers 503 "vault unavailable", never a plain-text 500.

Field report 2, item 2: with ``iam_user_group`` renamed, a one-audience check or sync
answered ``500 Internal Server Error`` as text/plain; the exporter must also recover by itself
once the Vault is back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient
from support.web import auth

from exporter.service import Services

NEEDS_VAULT = [
    ("POST", "/iam/drift/check", {"audience": "developers"}),
    ("POST", "/iam/drift/check", {"audiences": ["developers"]}),
    ("POST", "/iam/drift/sync", {"audience": "developers"}),
    ("POST", "/iam/drift/sync", {"audience": "developers", "dry_run": True}),
    ("POST", "/iam/drift/groups", {"audience": "lms-viewer"}),
    ("GET", "/iam/drift/developers", None),
    ("PUT", "/iam/drift/settings", {"check_interval_seconds": 600}),
    ("POST", "/iam/drift/ignore", {"audience": "developers", "reason": "x"}),
]


def rename(db: Path, old: str, new: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
    conn.close()


def test_every_endpoint_that_needs_the_vault_answers_503(
    client: TestClient, sample_db: Path
) -> None:
    rename(sample_db, "iam_user_group", "iam_user_group_moved")
    for method, path, body in NEEDS_VAULT[:5]:
        answer = client.request(method, path, json=body, headers=auth())
        assert answer.status_code == 503, (method, path, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/json")
        payload = answer.json()
        assert payload["error"] == "vault unavailable", payload
        assert "iam_user_group" in payload["detail"], payload


def test_a_locked_or_damaged_file_answers_503_on_reads_and_writes(
    client: TestClient, sample_db: Path
) -> None:
    rename(sample_db, "sys_infra_drift_ignore", "ignore_moved")
    rename(sample_db, "sys_infra_drift_settings", "settings_moved")
    rename(sample_db, "sys_infra_drift_episode", "episode_moved")
    for method, path, body in NEEDS_VAULT[5:]:
        answer = client.request(method, path, json=body, headers=auth())
        assert answer.status_code == 503, (method, path, answer.status_code, answer.text)
        assert answer.json()["error"] == "vault unavailable"


def test_the_exporter_recovers_by_itself_once_the_vault_is_back(
    client: TestClient, services: Services, sample_db: Path
) -> None:
    rename(sample_db, "iam_user_group", "iam_user_group_moved")
    assert (
        client.post("/iam/drift/check", json={"audience": "developers"}, headers=auth()).status_code
        == 503
    )
    assert services.snapshots.current.vault_up is False
    assert services.snapshots.current.checks["developers"].status.value == "error"
    rename(sample_db, "iam_user_group_moved", "iam_user_group")
    answer = client.post("/iam/drift/check", json={"audience": "developers"}, headers=auth())
    assert answer.status_code == 200 and answer.json()["status"] == "synced"
    assert services.snapshots.current.vault_up is True
    full = client.post("/iam/drift/check", json={}, headers=auth())
    assert full.status_code == 200 and full.json()["summary"]["error"] == 1  # sales-team only
