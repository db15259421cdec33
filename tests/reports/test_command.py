"""``run_report`` (``vault-drift report``) and the scheduled digest."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.reports import NOW, PUBLIC_URL, SmtpServer, bare_vault

from exporter.cli.main import main
from exporter.vault import SqliteStore
from reports.command import run_report, send_scheduled_digest


def digest_rows(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT at, result, detail FROM sys_infra_drift_mail WHERE kind = 'digest' ORDER BY id"
        ).fetchall()
    conn.close()
    return rows


def test_report_to_a_file_embeds_the_chart(
    history_db: Path, history_store: SqliteStore, tmp_path: Path
) -> None:
    out = tmp_path / "digest.html"
    assert run_report(history_store, "7d", str(out), False, None, PUBLIC_URL, NOW) == 0
    html = out.read_text()
    assert 'src="data:image/png;base64,iVBOR' in html and "cid:" not in html
    assert len(digest_rows(history_db)) == 1  # a file is not a mail: nothing recorded


def test_report_without_out_or_send_writes_stdout(
    history_store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_report(history_store, "1d", None, False, None, PUBLIC_URL, NOW) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"period": "30d"}, "unknown period '30d'"),
        ({"send": True}, "--send needs mail configured"),
        ({"db": "empty.db"}, "cannot read the drift history"),
        ({"out": "no/such/folder/x.html"}, "cannot write no/such/folder/x.html"),
    ],
)
def test_report_errors_exit_2_with_one_line(
    history_db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: dict[str, object],
    message: str,
) -> None:
    # a Vault the exporter never ran on, not opened as a store: no companion tables
    db = bare_vault(tmp_path / "empty.db") if args.get("db") == "empty.db" else history_db
    status = run_report(SqliteStore(db), str(args.get("period", "1d")), args.get("out"),  # type: ignore[arg-type]
                        bool(args.get("send")), None, PUBLIC_URL, NOW)  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_report_send_failure_exits_2_and_records_it(
    history_db: Path, smtp_factory: Callable[..., SmtpServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = smtp_factory(start=False)
    settings = server.settings(password="do-not-print")
    calls: list[tuple[str, str]] = []
    status = run_report(SqliteStore(history_db), "1d", None, True, settings, PUBLIC_URL, NOW,
                        lambda k, r: calls.append((k, r)))  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and "digest not sent" in err and "do-not-print" not in err
    assert calls == [("digest", "failed")]
    assert digest_rows(history_db)[-1][1] == "failed"


def test_scheduled_digest_once_a_day_across_restarts(
    history_db: Path, smtp_server: SmtpServer
) -> None:
    settings = smtp_server.settings()
    day = datetime.fromisoformat("2026-11-26T00:00:00+00:00")

    def run(at: datetime) -> str | None:
        store = SqliteStore(history_db).open()  # a new one each time, as after a restart
        attempt = send_scheduled_digest(store, settings, PUBLIC_URL, at)
        return None if attempt is None else attempt.result

    # the example history holds 11-24's scheduled digest: 11-25 08:00's is due at NOW
    assert run(NOW) == "sent"
    assert run(NOW + timedelta(minutes=15)) is None  # same slot, a "restarted" caller
    assert run(day + timedelta(hours=7, minutes=59)) is None  # before the next slot
    assert run(day + timedelta(hours=8)) == "sent"
    assert run(day + timedelta(hours=20)) is None
    assert [row[2] for row in digest_rows(history_db)] == [
        "scheduled 1d", "scheduled 1d", "scheduled 1d",
    ]  # fmt: skip
    assert len(smtp_server.inbox.messages) == 2


def test_scheduled_digest_honours_digest_hour_and_manual_sends_do_not_count(
    history_db: Path, smtp_server: SmtpServer
) -> None:
    with sqlite3.connect(history_db) as conn:
        conn.execute("INSERT INTO sys_infra_drift_settings VALUES ('digest_hour_utc', '9')")
    conn.close()
    settings, store = smtp_server.settings(), SqliteStore(history_db).open()
    assert run_report(store, "1d", None, True, settings, PUBLIC_URL, NOW) == 0
    nine = NOW + timedelta(hours=1)
    assert send_scheduled_digest(store, settings, PUBLIC_URL, nine - timedelta(seconds=1)) is None
    attempt = send_scheduled_digest(store, settings, PUBLIC_URL, nine)
    assert attempt is not None and attempt.result == "sent"
    assert send_scheduled_digest(store, None, PUBLIC_URL, nine) is None  # mail off


def test_scheduled_digest_never_raises_on_a_vault_error(
    tmp_path: Path, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(bare_vault(tmp_path / "bare.db"))  # no companion tables
    with caplog.at_level(logging.ERROR, logger="vault_drift.mail"):
        assert send_scheduled_digest(store, smtp_server.settings(), PUBLIC_URL, NOW) is None
    assert "scheduled digest: Vault database error" in caplog.text
    assert smtp_server.inbox.messages == []


def test_the_report_command_reads_through_the_store(
    history_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VAULT_DRIFT_DATABASE", str(tmp_path / "absent.db"))
    assert main(["report"]) == 2
    err = capsys.readouterr().err
    assert "absent.db not found" in err and err.count("\n") == 1
    assert not (tmp_path / "absent.db").exists()  # a report never creates a Vault DB

    monkeypatch.setenv("VAULT_DRIFT_DATABASE", str(history_db))
    out = tmp_path / "digest.html"
    assert main(["report", "--period", "7d", "--out", str(out)]) == 0
    assert "Drift digest" in out.read_text()
