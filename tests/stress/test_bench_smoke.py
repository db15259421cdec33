"""The benchmark scripts still run: each one's ``--small`` mode, as a user would start it.

The figures themselves are in docs/benchmarks.md (full sizes take minutes); here only their
shape and the invariants that hold at any size are checked: a full check costs about
ceil(G / page size) Cloudflare requests while the naive loop costs G, both find the same
statuses, a Vault change reaches /metrics, the budget share of a listing is below the naive one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_bench(module: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", module, "--small"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_check_cost_small() -> None:
    result = run_bench("bench.check_cost")
    for row in result["requests"]:
        assert row["checker"] <= row["bound"] < row["naive"], row
        assert row["naive"] >= row["groups"]
    full = result["full_check"]
    assert (
        0
        < full["engine_seconds_min"]
        <= full["engine_seconds_median"]
        <= full["engine_seconds_max"]
    )
    assert full["naive_seconds"] > 0 and full["engine_rounds"] == 2
    assert sum(full["counts"].values()) == full["groups"]


def test_serve_latency_small() -> None:
    result = run_bench("bench.serve_latency")
    assert 0 < result["change_to_metrics_seconds"]["max"] < 60
    assert result["metrics"]["scrapes"] > 0 and result["metrics"]["p95_ms"] > 0
    assert 0 < result["rss_mb"]["max"] < 1000


def test_budget_small() -> None:
    result = run_bench("bench.budget")
    checker, naive = result["rows"][0], result["rows"][-1]
    assert naive["requests_per_check"] == result["groups"]
    assert checker["budget_share_percent"] < naive["budget_share_percent"]


def test_listing_memory_small() -> None:
    result = run_bench("bench.listing_memory")
    for world in ("one_page", "three_pages", "large"):
        this = result[world]["this"]
        assert 0 < this["peak_rss_mb_median"] <= this["peak_rss_mb_max"] < 1000
        assert sum(this["counts"].values()) == result[world]["groups"]


def test_d1_cost_small() -> None:
    result = run_bench("bench.d1_cost")
    full = result["full_check"]
    assert full["counts_file"] == full["counts_d1"]
    assert full["member_pages"] <= full["member_pages_bound"]
    assert 0 < result["notification"]["max_s"] < 30
    assert 0 < result["budget"]["budget_share_percent"] < 100


def test_d1_memory_small() -> None:
    rows: Any = run_bench("bench.d1_memory")
    assert [row["check"].split(",")[0] for row in rows] == ["file", "file", "D1 (simulator)"] + [
        "file"
    ] * 2
    # Each child's own peak never exceeds what getrusage says (that one includes the harness).
    assert all(0 < row["own_peak_mb"] <= row["ru_maxrss_mb"] for row in rows)


def test_compare_trees_small() -> None:
    """The before/after script runs; compared with itself, both sides find the same."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.compare_trees", "--base", str(ROOT), "--small"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert set(result["metrics"]) == {"audiences", "base", "this"}
    for side in ("base", "this"):
        assert result["metrics"][side]["bytes"] > 0
        assert len(result["full_check"]["steady"][side]["all"]) == 2
        assert len(result["full_check"]["revoking_2"][side]["all"]) == 2


def test_page_scale_small() -> None:
    from support import require_tool

    require_tool("chromium")
    result = run_bench("bench.page_scale")
    screen = result["list"]["screen"]
    assert result["audiences"] == 15 and screen["cards"] == 5
    assert screen["count_in_first_screen"] is True
    assert result["details"]["html_bytes"] > 0
    assert all(
        not counts or not ({"serious", "critical"} & set(counts))
        for counts in result["axe_violations_by_impact"].values()
    )


def test_attribution_cost_small() -> None:
    [run] = run_bench("bench.attribution_cost")["runs"]
    assert run["listings"] <= run["checks"]  # at most one listing a cycle
    assert run["audit_requests"] == run["listings"]  # a listing of these sizes is one page
    assert run["manual_changes_counted"] == run["drifting_groups_per_hour"] * run["hours"]
    assert run["extra_member_checks_attributed"] == run["extra_member_checks_resolved"] > 0
    assert run["audit_budget_share_percent"] < 1


def test_webhook_soak_small() -> None:
    result = run_bench("bench.webhook_soak")
    assert result["lost"] == 0 and result["delivered"] == result["events"] == 100
    assert result["duplicates"] == result["failures_after_processing"]
    assert result["all_verified"] and result["order_kept_per_audience"]
    assert result["failures_500"] > 0


def test_aws_mixed_small() -> None:
    """The mixed world (moto): Cloudflare's requests are the same with AWS beside it."""
    result = run_bench("bench.aws_mixed")
    alone, mixed = result["cloudflare_alone"], result["mixed"]
    assert mixed["requests"]["cloudflare_access"] == alone["requests"]["cloudflare_access"]
    aws = mixed["requests"]["aws_identity_center"]
    assert aws["ListGroupMemberships 2xx"] == result["world"]["aws"]
    assert mixed["counts"]["error"] == 0 and mixed["counts"]["drift"] == 4


def test_session_end_small() -> None:
    """A Vault removal on the simulated D1, notified, ends the leaver's sessions (2 rounds)."""
    result = run_bench("bench.session_end")
    ended = result["removal_to_sessions_ended"]
    assert ended["rounds"] == 2 and 0 < ended["p50_s"] <= ended["max_s"]
    assert result["revocations"] == {"auto_sync/revoked": 2}
    for setting in ("revoke_sessions_on", "revoke_sessions_off"):
        assert result[setting]["full_check_s"] > 0 and result[setting]["metrics_p95_ms"] > 0


def test_feed_budget_small() -> None:
    """A full check on D1 is one read and one write; a quiet poll one audit-log request; the
    lease's renewal and a standby's read of it one D1 request each."""
    result = run_bench("bench.feed_budget")
    for page in result["pages"].values():
        costs = page["costs"]
        assert costs["full_check"]["d1"] == 2
        assert costs["quiet_poll"] == {"audit_log": 1}
        assert costs["poll_with_edit"].get("access_listing", 0) == 0
        assert costs["lease_renewal"] == costs["standby_lease_read"] == {"d1": 1}
        no_edit = page["after_defaults_no_edit"]
        assert no_edit["total"] < page["before_1min_no_feed"]["total"]
        assert page["after_no_edit_with_lease"]["by_kind"]["d1_lease"] == 180
