"""``run_report`` (``vault-drift report``) and the scheduled digest."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from reports_support import NOW, PUBLIC_URL, SmtpServer

from reports.command import run_report, send_scheduled_digest
from reports.example import SQL

SCHEMA = SQL.joinpath("vault-schema.sql")


def digest_rows(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT at, result, detail FROM sys_infra_drift_mail WHERE kind = 'digest' ORDER BY id"
        ).fetchall()
    conn.close()
    return rows


def test_report_to_a_file_embeds_the_chart(history_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "digest.html"
    assert run_report(str(history_db), "7d", str(out), False, None, PUBLIC_URL, NOW) == 0
    html = out.read_text()
    assert 'src="data:image/png;base64,iVBOR' in html and "cid:" not in html
    assert len(digest_rows(history_db)) == 1  # a file is not a mail: nothing recorded


def test_report_without_out_or_send_writes_stdout(
    history_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_report(str(history_db), "1d", None, False, None, PUBLIC_URL, NOW) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"period": "30d"}, "unknown period '30d'"),
        ({"db": "absent.db"}, "cannot open the Vault database"),
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
    empty = tmp_path / "empty.db"  # a Vault the exporter never ran on: no companion tables
    with sqlite3.connect(empty) as conn:
        conn.executescript(SCHEMA.read_text())
    conn.close()
    db = {"absent.db": str(tmp_path / "absent.db"), "empty.db": str(empty)}.get(
        str(args.get("db")), str(history_db)
    )
    status = run_report(db, str(args.get("period", "1d")), args.get("out"),  # type: ignore[arg-type]
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
    status = run_report(str(history_db), "1d", None, True, settings, PUBLIC_URL, NOW,
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
        attempt = send_scheduled_digest(history_db, settings, PUBLIC_URL, at)
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
    settings = smtp_server.settings()
    assert run_report(str(history_db), "1d", None, True, settings, PUBLIC_URL, NOW) == 0
    nine = NOW + timedelta(hours=1)
    assert (
        send_scheduled_digest(history_db, settings, PUBLIC_URL, nine - timedelta(seconds=1)) is None
    )
    attempt = send_scheduled_digest(history_db, settings, PUBLIC_URL, nine)
    assert attempt is not None and attempt.result == "sent"
    assert send_scheduled_digest(history_db, None, PUBLIC_URL, nine) is None  # mail off
