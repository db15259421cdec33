"""A realistic week of drift history in a real Vault DB, and the docs' example digest.

The tests build their database with :func:`build_example_vault` and assert the digest's
numbers against the values worked out by hand in ``tests/reports/test_digest.py``. Rerun
``PYTHONPATH=tests python -m support.example_week docs`` to regenerate ``docs/digest-example.html`` (the file
version: chart as a ``data:`` URI) and ``docs/digest-example.png`` (headless Chromium).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exporter.core.exposure import bucket_of
from exporter.core.times import format_time, parse_time
from support.vault_files import write_vault

EXAMPLE_NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)

# audience, namespace, sync_status, error_message
AUDIENCES = [
    ("lms-viewer", "lms", "synced", None),
    ("lms-admin", "lms", "drift", None),
    ("crm-sales", "crm", "drift", None),
    ("hr-portal", "hr", "error", "Cloudflare API timed out after 10s"),
    ("wiki-readers", "wiki", "synced", None),
    ("new-app", "apps", "pending", None),
]

# id, audience, namespace, opened, closed, peak missing, peak extra, close reason, closed by
EPISODES = [
    (
        1,
        "lms-viewer",
        "lms",
        "2026-11-10T09:00:00Z",
        "2026-11-10T10:00:00Z",
        1,
        1,
        "external",
        None,
    ),
    (
        2,
        "crm-sales",
        "crm",
        "2026-11-17T08:00:00Z",
        "2026-11-18T20:00:00Z",
        2,
        2,
        "sync",
        "bob@tpb.ai",
    ),
    (
        3,
        "lms-viewer",
        "lms",
        "2026-11-18T10:00:00Z",
        "2026-11-18T12:00:00Z",
        1,
        2,
        "sync",
        "alice@tpb.ai",
    ),
    (
        4,
        "legacy-app",
        "legacy",
        "2026-11-19T00:00:00Z",
        "2026-11-19T03:00:00Z",
        0,
        1,
        "removed",
        None,
    ),
    (
        5,
        "lms-viewer",
        "lms",
        "2026-11-20T09:00:00Z",
        "2026-11-20T09:30:00Z",
        0,
        1,
        "external",
        None,
    ),
    (
        6,
        "wiki-readers",
        "wiki",
        "2026-11-21T00:00:00Z",
        "2026-11-22T00:00:00Z",
        0,
        4,
        "external",
        None,
    ),
    (7, "lms-admin", "lms", "2026-11-23T06:00:00Z", None, 2, 2, None, None),
    (8, "lms-viewer", "lms", "2026-11-24T10:00:00Z", "2026-11-24T16:00:00Z", 3, 0, "sync", "auto"),
    (9, "crm-sales", "crm", "2026-11-25T07:30:00Z", None, 25, 0, None, None),
]

LMS_ADMIN_MEMBERS = [
    ("missing", "bob@example.com", "2026-11-23T06:00:00Z"),
    ("missing", "alice@example.com", "2026-11-23T06:00:00Z"),
    ("extra", "mallory@contractor.example", "2026-11-23T06:00:00Z"),
    ("extra", "eve@contractor.example", "2026-11-24T20:00:00Z"),
]

CURRENT_MEMBERS = {
    "lms-admin": LMS_ADMIN_MEMBERS,
    "crm-sales": [
        ("missing", f"sales{n:02d}@example.com", "2026-11-25T07:30:00Z") for n in range(25)
    ],
}

# audience, drift since, open episode, missing count, extra count, missing since, extra since,
# extra member-seconds of members no longer extra (trent: 5 minutes)
DRIFT_STATES = [
    ("lms-admin", "2026-11-23T06:00:00Z", 7, 2, 2, "2026-11-23T06:00:00Z", "2026-11-23T06:00:00Z",
     300.0),
    ("crm-sales", "2026-11-25T07:30:00Z", 9, 25, 0, "2026-11-25T07:30:00Z", None, 0.0),
]  # fmt: skip

# Extra members found gone (whatever removed them): audience, namespace, email, first seen,
# revoked. The syncs of AUDIT removed x/y (alice) and z/w (bob); the others went by hand.
REVOCATIONS = [
    ("lms-viewer", "lms", "ghost@example.org", "2026-11-10T09:00:00Z", "2026-11-10T10:00:00Z"),
    ("crm-sales", "crm", "z@contractor.example", "2026-11-17T08:00:00Z", "2026-11-18T20:00:00Z"),
    ("crm-sales", "crm", "w@contractor.example", "2026-11-17T08:00:00Z", "2026-11-18T20:00:00Z"),
    ("lms-viewer", "lms", "x@contractor.example", "2026-11-18T10:00:00Z", "2026-11-18T12:00:00Z"),
    ("lms-viewer", "lms", "y@contractor.example", "2026-11-18T10:00:00Z", "2026-11-18T12:00:00Z"),
    ("lms-viewer", "lms", "intern@example.com", "2026-11-20T09:00:00Z", "2026-11-20T09:30:00Z"),
    ("wiki-readers", "wiki", "temp1@example.com", "2026-11-21T00:00:00Z", "2026-11-21T00:10:00Z"),
    ("wiki-readers", "wiki", "temp2@example.com", "2026-11-21T00:00:00Z", "2026-11-21T00:10:00Z"),
    ("wiki-readers", "wiki", "temp3@example.com", "2026-11-21T00:00:00Z", "2026-11-21T06:00:00Z"),
    ("wiki-readers", "wiki", "temp4@example.com", "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z"),
    ("lms-admin", "lms", "trent@example.org", "2026-11-24T09:00:00Z", "2026-11-24T09:05:00Z"),
]  # fmt: skip

# The leavers' session revocations (README, "Effective removal"): each removal above, its
# sessions revoked 20 s after the check that saw it gone (the page's and the API's syncs
# removed x, y, z and w); ghost's ended before the period. One leaver of lms-admin is pending:
# Cloudflare answered 500 twice. email -> reason; the others are observed removals.
SESSION_REASONS = {"x@contractor.example": "sync", "y@contractor.example": "sync",
                   "z@contractor.example": "sync", "w@contractor.example": "sync"}  # fmt: skip
SESSION_PENDING = ("lms-admin", "lms", "kim@example.org", "2026-11-24T20:00:00Z",
                   "2026-11-25T07:30:00Z", 2, "Cloudflare API answered 500 (code 10001)")  # fmt: skip

LAST_DIGEST = {"at": "2026-11-24T08:00:00Z", "kind": "digest", "recipients": 2, "result": "sent",
               "detail": "scheduled 1d"}  # fmt: skip

# hr-portal is in error 11-21 12:00-13:00 and since 11-25 06:00.
ERRORS = [
    ("2026-11-21T12:00:00Z", "hr-portal", "Cloudflare API answered 500 (code 10001)"),
    ("2026-11-25T06:00:00Z", "hr-portal", "Cloudflare rate limit: 429, retry after 300 s"),
    ("2026-11-25T07:00:00Z", "hr-portal", "Cloudflare API timed out after 10s"),
]
ERROR_SPANS = [("2026-11-21T12:00:00Z", "2026-11-21T13:00:00Z"), ("2026-11-25T06:00:00Z", None)]

# started, audience, action, trigger, actor, added, removed, result, reason
AUDIT = [
    (
        "2026-11-18T12:00:00Z",
        "lms-viewer",
        "sync",
        "page",
        "alice@tpb.ai",
        ["dan@example.com"],
        ["x@contractor.example", "y@contractor.example"],
        "synced",
        None,
    ),
    (
        "2026-11-18T20:00:00Z",
        "crm-sales",
        "sync",
        "api",
        "bob@tpb.ai",
        ["carol@example.com"],
        ["z@contractor.example", "w@contractor.example"],
        "synced",
        None,
    ),
    (
        "2026-11-22T10:00:00Z",
        "hr-portal",
        "sync",
        "api",
        "bob@tpb.ai",
        [],
        [],
        "error",
        "Cloudflare API answered 500 (code 10001)",
    ),
    (
        "2026-11-23T09:00:00Z",
        "new-app",
        "create_group",
        "cli",
        "ops@bastion",
        [],
        [],
        "error",
        "Cloudflare API answered 403 (code 10000)",
    ),
    (
        "2026-11-24T16:00:00Z",
        "lms-viewer",
        "sync",
        "auto",
        "auto",
        ["ann@example.com", "ben@example.com", "cid@example.com"],
        [],
        "synced",
        None,
    ),
    (
        "2026-11-24T18:00:00Z",
        "lms-admin",
        "sync",
        "cli",
        "ops@bastion",
        [],
        [f"user{n}@example.com" for n in range(12)],
        "blocked",
        "mass_removal",
    ),
    ("2026-11-25T07:45:00Z", "crm-sales", "sync", "page", "alice@tpb.ai", [], [], "noop", None),
]


def build_example_vault(path: Path, now: datetime = EXAMPLE_NOW) -> Path:
    """A Vault DB at ``path`` with the schema, the companion tables and a week of history."""
    return write_vault(path, example_tables(now))


def example_tables(now: datetime) -> dict[str, list[dict[str, Any]]]:
    """The example week as the rows of each table, in the order they are written."""
    episode_columns = ("id", "audience", "namespace", "opened_at", "closed_at", "peak_missing",
                       "peak_extra", "close_reason", "closed_by")  # fmt: skip
    drift_state_columns = ("audience", "drift_since", "episode_id", "missing_count", "extra_count",
                           "missing_since", "extra_since", "extra_seconds_closed")  # fmt: skip
    cycle_columns = ("started_at", "finished_at", "trigger", "scope", "synced", "drift", "error")
    cycle_constants = {"vault_ok": 1, "cloudflare_ok": 1, "total": 6, "pending": 1,
                       "duration_seconds": 0.8}  # fmt: skip
    return {
        "sys_infra_state": [_state_row(*audience, now) for audience in AUDIENCES],
        "sys_infra_drift_episode": [dict(zip(episode_columns, e, strict=True)) for e in EPISODES],
        "sys_infra_drift_member": [
            {"audience": audience, "kind": kind, "email": email, "first_seen_at": seen}
            for audience, members in CURRENT_MEMBERS.items()
            for kind, email, seen in members
        ],
        "sys_infra_drift_state": [
            {
                **dict(zip(drift_state_columns, state, strict=True)),
                "last_check_at": format_time(now),
                "observed_at": format_time(now),
            }
            for state in DRIFT_STATES
        ],
        "sys_infra_drift_revocation": [_revocation_row(*r) for r in REVOCATIONS],
        "sys_infra_drift_revocation_total": _revocation_totals(),
        "sys_infra_drift_session_revocation": _session_rows(),
        "sys_infra_drift_session_total": _session_totals(),
        "sys_infra_drift_error": [
            {"at": at, "audience": audience, "message": message} for at, audience, message in ERRORS
        ],
        "sys_infra_drift_audit": [_audit_row(*entry) for entry in AUDIT],
        "sys_infra_drift_cycle": [
            {**dict(zip(cycle_columns, cycle, strict=True)), **cycle_constants}
            for cycle in _cycles(now)
        ],
        "sys_infra_drift_mail": [LAST_DIGEST],
    }


def _state_row(
    audience: str, namespace: str, status: str, error: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "audience": audience,
        "namespace": namespace,
        "provider": "cloudflare_access",
        "provider_resource_id": None if status == "pending" else f"grp-{audience}",
        "sync_status": status,
        "error_message": error,
        "created_at": "2026-11-01T00:00:00Z",
        "updated_at": format_time(now),
    }


def _audit_row(
    started: str,
    audience: str,
    action: str,
    trigger: str,
    actor: str,
    added: list[str],
    removed: list[str],
    result: str,
    reason: str | None,
) -> dict[str, Any]:
    return {
        "started_at": started,
        "finished_at": started,
        "audience": audience,
        "action": action,
        "trigger": trigger,
        "actor": actor,
        "mode": "full",
        "added": json.dumps(added),
        "removed": json.dumps(removed),
        "added_count": len(added),
        "removed_count": len(removed),
        "result": result,
        "reason": reason,
    }


def _revocation_row(
    audience: str, namespace: str, email: str, first_seen: str, revoked: str
) -> dict[str, Any]:
    seconds = (parse_time(revoked) or EXAMPLE_NOW) - (parse_time(first_seen) or EXAMPLE_NOW)
    return {
        "audience": audience,
        "namespace": namespace,
        "provider": "cloudflare_access",
        "email": email,
        "first_seen_at": first_seen,
        "revoked_at": revoked,
        "duration_seconds": seconds.total_seconds(),
    }


def _revocation_totals() -> list[dict[str, Any]]:
    """The revocation histogram's totals, as the exporter would have kept them."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for row in (_revocation_row(*r) for r in REVOCATIONS):
        key = (row["namespace"], bucket_of(row["duration_seconds"]))
        entry = totals.setdefault(
            key,
            {"namespace": key[0], "provider": "cloudflare_access", "bucket": key[1],
             "count": 0, "seconds": 0.0},
        )  # fmt: skip
        entry["count"] += 1
        entry["seconds"] += row["duration_seconds"]
    return [totals[key] for key in sorted(totals)]


def _session_rows() -> list[dict[str, Any]]:
    rows = []
    for audience, namespace, email, first_seen, removed in REVOCATIONS:
        revoked = (parse_time(removed) or EXAMPLE_NOW) + timedelta(seconds=20)
        rows.append(
            {"audience": audience, "namespace": namespace, "provider": "cloudflare_access",
             "email": email, "reason": SESSION_REASONS.get(email, "observed_removal"),
             "removed_at": removed, "first_seen_at": first_seen, "state": "revoked",
             "attempts": 1, "last_attempt_at": format_time(revoked),
             "revoked_at": format_time(revoked)}
        )  # fmt: skip
    audience, namespace, email, first_seen, removed, attempts, error = SESSION_PENDING
    rows.append(
        {"audience": audience, "namespace": namespace, "provider": "cloudflare_access",
         "email": email, "reason": "observed_removal", "removed_at": removed,
         "first_seen_at": first_seen, "state": "pending", "attempts": attempts,
         "last_attempt_at": "2026-11-25T07:45:20Z", "last_error": error}
    )  # fmt: skip
    return rows


def _session_totals() -> list[dict[str, Any]]:
    """What the session metrics keep of those rows: the access-end histogram (first seen
    extra to revoked) and the results' counts (a failed attempt counts once per attempt)."""
    totals: dict[tuple[str, str, str], dict[str, Any]] = {}

    def add(namespace: str, kind: str, bucket: str, count: int, seconds: float) -> None:
        entry = totals.setdefault(
            (namespace, kind, bucket),
            {"namespace": namespace, "provider": "cloudflare_access", "kind": kind,
             "bucket": bucket, "count": 0, "seconds": 0.0},
        )  # fmt: skip
        entry["count"] += count
        entry["seconds"] += seconds

    for row in _session_rows():
        if row["state"] == "pending":
            add(row["namespace"], "result", "failed", row["attempts"], 0.0)
            continue
        start, end = parse_time(row["first_seen_at"]), parse_time(row["revoked_at"])
        seconds = ((end or EXAMPLE_NOW) - (start or EXAMPLE_NOW)).total_seconds()
        add(row["namespace"], "result", "ok", 1, 0.0)
        add(row["namespace"], "access_end", bucket_of(seconds), 1, seconds)
    return [totals[key] for key in sorted(totals)]


def _cycles(now: datetime) -> list[tuple[str | None, str | None, str, str, int, int, int]]:
    """A full cycle every 15 minutes over the week, counts derived from the episodes."""

    def parse(value: str | None) -> datetime:
        return parse_time(value) or now + timedelta(seconds=1)

    spans = [(parse(e[3]), parse(e[4])) for e in EPISODES if e[1] != "legacy-app"]
    errors = [(parse(start), parse(end)) for start, end in ERROR_SPANS]
    rows = []
    moment = now - timedelta(days=7)
    while moment <= now:
        drift = sum(start <= moment < end for start, end in spans)
        error = sum(start <= moment < end for start, end in errors)
        stamp = format_time(moment)
        rows.append((stamp, stamp, "schedule", "full", 5 - drift - error, drift, error))
        moment += timedelta(minutes=15)
    return rows


def write_docs_example(folder: Path, public_url: str = "https://vault-drift.example.com") -> Path:
    """Render the example digest (file version) into ``folder/digest-example.html``."""
    import tempfile

    from exporter.vault import SqliteStore
    from reports.command import render_digest_file

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(build_example_vault(Path(tmp) / "vault.db")).open()
        html = render_digest_file(store, "7d", public_url, EXAMPLE_NOW)
    target = folder / "digest-example.html"
    target.write_text(html, encoding="utf-8")
    return target


def screenshot(html: Path, png: Path) -> None:
    """A 900-pixel-wide PNG of the page with headless Chromium (what a reader sees)."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={png.resolve()}", "--window-size=900,2640", html.resolve().as_uri()],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


if __name__ == "__main__":
    page = write_docs_example(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
    screenshot(page, page.with_suffix(".png"))
    print(page, page.with_suffix(".png"))
