"""The command line against the sample world: exit codes, JSON, clear errors."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from support import free_port

from exporter.cli.main import main
from exporter.demo.simulator import CloudflareSimulator, Faults


def run(*args: str) -> int:
    return main(list(args))


def test_check_exit_codes_follow_the_worst_status(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("check") == 2  # the sample has an audience in error
    assert run("check", "--audience", "lms-instructors") == 1
    assert run("check", "--audience", "lms-viewer") == 1  # pending
    assert run("check", "--audience", "administrators", "--audience", "developers") == 0
    out = capsys.readouterr().out
    assert "lms-instructors: missing in Cloudflare: bob@example.com" in out


def test_check_json_is_the_api_document(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("check", "--audience", "lms-instructors", "--json") == 1
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"summary", "items", "last_check"}
    [item] = document["items"]
    assert item["drift_details"]["missing"] == ["alice@example.com", "bob@example.com"]
    assert item["drift_details"]["extra_total"] == 1
    assert item["last_check_at"].endswith("Z")


def test_sync_dry_run_then_sync_then_nothing_to_do(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # sales-team's group is gone: its check errs, so --all answers for it too, and exits 2.
    assert run("sync", "--all", "--dry-run", "--json") == 2
    plan = json.loads(capsys.readouterr().out)
    assert plan["dry_run"] is True
    assert [(r["audience"], r["result"]) for r in plan["results"]] == [
        ("lms-instructors", "synced"),
        ("sales-team", "error"),
    ]
    assert run("check", "--audience", "lms-instructors") == 1  # still drifting
    assert run("sync", "--audience", "lms-instructors") == 0
    assert run("check", "--audience", "lms-instructors") == 0
    capsys.readouterr()
    assert run("sync", "--audience", "lms-instructors", "--json") == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["result"] == "noop"


def test_the_table_names_statuses_as_the_api_does(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("check") == 2
    header, *rows = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert header.split()[2] == "STATUS"
    statuses = {row.split()[0]: row.split()[2] for row in rows}
    assert statuses == {
        "lms-instructors": "drift",
        "sales-team": "error",
        "lms-viewer": "pending",
        "administrators": "synced",
        "developers": "synced",
    }


def test_sync_all_is_an_error_when_its_check_could_not_list_cloudflare(
    cli_env: dict[str, str],
    simulator: CloudflareSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "a-revoked-token")  # the listing answers 403
    assert run("sync", "--all", "--json") == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["check_error"].startswith("Cloudflare listing failed: ")
    assert "Authentication error" in payload["check_error"]
    by_audience = {r["audience"]: r for r in payload["results"]}
    assert set(by_audience) == {"administrators", "developers", "lms-instructors", "sales-team"}
    assert {r["result"] for r in by_audience.values()} == {"error"}
    assert all("Authentication error" in r["reason"] for r in by_audience.values())
    assert run("sync", "--all", "--dry-run") == 2
    out = capsys.readouterr().out
    assert "lms-instructors: error: +0 -0 (not checked: " in out
    assert "nothing synced: the check before the sync could not complete" in out
    assert not [m for m, _, _ in simulator.request_log if m == "PUT"]


def test_sync_blocked_is_1_and_error_wins_with_2(
    cli_env: dict[str, str], simulator: CloudflareSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    admins = next(g for g in simulator.groups() if g["name"] == "administrators")
    simulator.set_include(
        admins["id"], admins["include"] + [{"email": {"email": f"x{i}@e.com"}} for i in range(9)]
    )
    assert run("sync", "--audience", "administrators") == 1
    assert "blocked" in capsys.readouterr().out
    assert run("sync", "--audience", "administrators", "--audience", "sales-team") == 2


def test_sync_all_heals_every_audience_while_one_hidden_group_answers_429(
    cli_env: dict[str, str], simulator: CloudflareSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check's 429 pauses calls for 1 s; the sync waits it out. The audiences it could
    not read are results ``error`` with their reason, and the exit status is 2 (field
    report 2, item 1: they used to be left out, with exit 0)."""
    groups = {g["name"]: g for g in simulator.groups()}
    developers = groups["developers"]
    simulator.set_include(developers["id"], developers["include"][:-1])  # dev5 goes missing
    simulator.faults = Faults(throttled_group=groups["administrators"]["id"], retry_after_seconds=1)

    code = run("sync", "--all", "--json")
    results = {r["audience"]: r for r in json.loads(capsys.readouterr().out)["results"]}

    assert {name: r["result"] for name, r in results.items()} == {
        "administrators": "error",
        "developers": "synced",
        "lms-instructors": "synced",
        "sales-team": "error",
    }, results
    assert results["administrators"]["reason"].startswith("not checked: ")
    assert code == 2
    assert run("check", "--audience", "developers", "--audience", "lms-instructors") == 0


def test_usage_and_config_errors_exit_2_with_one_line(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("check", "--audience", "no-such-audience") == 2
    assert capsys.readouterr().err.strip() == "vault-drift: unknown audience: no-such-audience"
    monkeypatch.setenv("VAULT_DRIFT_CHECK_INTERVAL", "5s")
    monkeypatch.setenv("VAULT_DRIFT_LISTEN", "nowhere")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "super-secret-token-value")
    assert run("check") == 2
    err = capsys.readouterr().err
    assert "VAULT_DRIFT_CHECK_INTERVAL: must be between 30s and 24h" in err
    assert "VAULT_DRIFT_LISTEN: must be HOST:PORT" in err
    assert "super-secret" not in err and "Traceback" not in err


def test_missing_database_and_credentials_are_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    monkeypatch.setenv("VAULT_DRIFT_DATABASE", str(tmp_path / "nope.db"))
    assert run("check") == 2
    err = capsys.readouterr().err
    assert "CLOUDFLARE_API_TOKEN: required" in err and "CLOUDFLARE_ACCOUNT_ID: required" in err
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "t" * 20)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "acct")
    assert run("check") == 2
    assert "nope.db not found" in capsys.readouterr().err


def test_cloudflare_timeout_comes_from_the_configuration(
    cli_env: dict[str, str],
    simulator: CloudflareSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    simulator.latency_seconds = 2.5
    monkeypatch.setenv("VAULT_DRIFT_CLOUDFLARE_TIMEOUT", "1s")
    assert run("check", "--audience", "administrators", "--json") == 2
    [item] = json.loads(capsys.readouterr().out)["items"]
    assert item["status"] == "error" and "timeout after 1s" in item["error_message"]


def test_cloudflare_page_size_comes_from_the_configuration(
    cli_env: dict[str, str], simulator: CloudflareSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(7):  # 10 groups in the account, 3 of them the sample's
        simulator.add_group(f"unrelated-{number}", [])

    def listings() -> int:
        return sum(path.endswith("/access/groups") for _, path, _ in simulator.request_log)

    assert run("check") == 2
    assert listings() == 1  # 1,000 asked, 50 served: one page
    monkeypatch.setenv("VAULT_DRIFT_CLOUDFLARE_PAGE_SIZE", "5")
    assert run("check") == 2
    assert listings() == 1 + 2  # two full pages of 5, the last one stopped by total_count


def test_the_installed_command_has_help_and_version() -> None:
    exe = Path(sys.executable).parent / "vault-drift"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("vault-drift ")
    for command in ("serve", "check", "sync", "report", "demo"):
        help_text = subprocess.run(
            [exe, command, "--help"], capture_output=True, text=True, timeout=30
        )
        assert help_text.returncode == 0 and "usage: vault-drift" in help_text.stdout


def test_a_taken_address_is_a_clear_config_error(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run("serve", "--listen", f"127.0.0.1:{port}") == 2
    err = capsys.readouterr().err
    assert f"VAULT_DRIFT_LISTEN: cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_the_demo_prints_what_its_first_check_found_and_stops_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also: it listens where VAULT_DRIFT_LISTEN says (as serve does, so that two demos can
    share a machine), and its banner gives the simulated Cloudflare's URL, account and token."""
    exe = Path(sys.executable).parent / "vault-drift"
    port = free_port()
    monkeypatch.setenv("VAULT_DRIFT_LISTEN", f"127.0.0.1:{port}")
    demo = subprocess.Popen(
        [exe, "demo"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    out = demo.stdout
    assert out is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in out:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    try:
        while not (seen and seen[-1].startswith("6 audiences:")):
            try:
                seen.append(lines.get(timeout=60))
            except queue.Empty:
                raise AssertionError("no first check printed:\n" + "".join(seen)) from None
        fields = _banner_fields(seen)
        assert fields["operator page"] == f"http://127.0.0.1:{port}/"
        cloudflare = fields["Cloudflare sim"]
        groups = requests.get(
            f"{cloudflare}/accounts/{fields['account id']}/access/groups",
            headers={"Authorization": f"Bearer {fields['API token']}"},
            timeout=10,
        )
        assert groups.status_code == 200 and groups.json()["success"] is True
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=10)
        out.close()
    table = "".join(seen[seen.index("first check:\n") :])
    assert "lms-instructors: missing in Cloudflare: alice@example.com" in table
    # The AWS audience (moto's identity store, the test extra has it): named by the banner,
    # its members said to be missing or extra in AWS, pat without an AWS user.
    assert fields["AWS (moto)"].startswith("http://127.0.0.1:")
    assert fields["store id"].startswith("d-")
    assert "aws-payroll: missing in AWS: bob@example.com" in table
    assert "aws-payroll: extra in AWS: eve@example.com" in table
    assert "6 audiences: 2 in sync, 2 drift, 1 error, 1 pending" in table


def _banner_fields(lines: list[str]) -> dict[str, str]:
    """The demo banner's ``  label   value`` lines (labels and values split by 2+ spaces)."""
    fields = {}
    for line in lines[: lines.index("first check:\n")]:
        parts = [p for p in line.strip().split("  ") if p]
        if line.startswith("  ") and len(parts) >= 2:
            fields[parts[0].strip()] = parts[1].strip()
    return fields
