"""Mail through a real SMTP server on loopback (aiosmtpd); the MIME is parsed back."""

from __future__ import annotations

import sqlite3
import ssl
from pathlib import Path

import pytest
from support.reports import NOW, PUBLIC_URL, SMTP_PASSWORD, SMTP_USER, SmtpServer

from exporter.vault import SqliteStore
from reports.command import run_report
from reports.mail import MailError, SmtpSettings, build_message, send


def test_digest_arrives_as_text_plus_html_with_the_chart_inline(
    history_db: Path, smtp_server: SmtpServer
) -> None:
    settings = smtp_server.settings()
    mails: list[tuple[str, str]] = []
    status = run_report(SqliteStore(history_db), "1d", None, True, settings, PUBLIC_URL, NOW,
                        lambda kind, result: mails.append((kind, result)))  # fmt: skip
    assert status == 0 and mails == [("digest", "sent")]

    ((mail_from, rcpt_tos, message),) = smtp_server.inbox.messages
    assert mail_from == "vault-drift@tpb.example"
    assert rcpt_tos == ["admin@tpb.example", "sre@tpb.example"]
    assert message["To"] == "admin@tpb.example, sre@tpb.example"
    assert message["Subject"] == "[TPB Vault] Drift digest (daily): 2 drift, 1 error, 2/6 in sync"
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.get_payload()  # type: ignore[misc]
    assert text.get_content_type() == "text/plain" and "CURRENT DRIFTS" in text.get_content()
    assert related.get_content_type() == "multipart/related"
    html, image = related.get_payload()
    assert html.get_content_type() == "text/html"
    assert image.get_content_type() == "image/png" and image["Content-ID"] == "<drift-chart>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="cid:drift-chart"' in html.get_content()

    conn = sqlite3.connect(history_db)
    rows = conn.execute("SELECT kind, recipients, result, detail FROM sys_infra_drift_mail"
                        " ORDER BY id DESC LIMIT 1").fetchall()  # fmt: skip
    conn.close()
    assert rows == [("digest", 2, "sent", "manual 1d")]


def test_starttls_and_login(starttls_server: tuple[SmtpServer, ssl.SSLContext]) -> None:
    server, client_context = starttls_server
    settings = server.settings(starttls=True, user=SMTP_USER, password=SMTP_PASSWORD)
    message = build_message("subject", "<p>hi</p>", "hi", {}, settings, sent_at=NOW)
    send(message, settings, tls_context=client_context)
    ((_, _, received),) = server.inbox.messages
    assert (
        received["Subject"] == "subject" and received["Date"] == "Wed, 25 Nov 2026 08:00:00 +0000"
    )


def test_starttls_required_but_not_offered_is_a_failure_not_a_downgrade(
    smtp_server: SmtpServer,
) -> None:
    settings = smtp_server.settings(starttls=True)
    with pytest.raises(MailError, match="STARTTLS"):
        send(build_message("s", "<p>h</p>", "h", {}, settings), settings)
    assert smtp_server.inbox.messages == []


def test_wrong_password_fails_without_revealing_it(smtp_server: SmtpServer) -> None:
    wrong = "wr0ng-Pa55-" + SMTP_PASSWORD
    settings = smtp_server.settings(user=SMTP_USER, password=wrong)
    with pytest.raises(MailError) as failure:
        send(build_message("s", "<p>h</p>", "h", {}, settings), settings)
    assert "SMTPAuthenticationError" in str(failure.value)
    assert wrong not in str(failure.value) and wrong not in repr(failure.value)
    assert failure.value.__cause__ is None
    assert smtp_server.inbox.messages == []
    good = smtp_server.settings(user=SMTP_USER, password=SMTP_PASSWORD)
    send(build_message("s", "<p>h</p>", "h", {}, good), good)
    assert len(smtp_server.inbox.messages) == 1


def test_settings_repr_hides_the_password() -> None:
    settings = SmtpSettings("smtp.example", user="u", password="hunter2", mail_to=["a@b"])
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
    assert (settings.port, settings.starttls, settings.timeout) == (587, True, 10)
