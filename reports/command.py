"""``vault-drift report`` and the scheduled digest: build the digest, write it, mail it."""

from __future__ import annotations

import base64
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path

from exporter.vault.store import VaultError, VaultStore
from reports.chart import drift_chart
from reports.digest import Digest, build_digest
from reports.history import History, Period, UnknownPeriod, load_history, period_ending
from reports.mail import MailError, SmtpSettings, build_message, send
from reports.mail_log import (
    MailAttempt,
    OnMail,
    ignore_mail,
    record_attempt,
    scheduled_digest_sent_since,
)
from reports.render import CHART_CID, render_digest

log = logging.getLogger("vault_drift.mail")


class ReportError(Exception):
    """A one-line reason for exit status 2."""


def run_report(
    store: VaultStore,
    period: str,
    out: str | None,
    send: bool,
    smtp: SmtpSettings | None,
    public_url: str,
    now: datetime,
    on_mail: OnMail = ignore_mail,
) -> int:
    """Write the digest to ``out`` (or stdout when neither ``out`` nor ``send``) and/or mail it.

    Returns 0, or 2 after printing one line on stderr.
    """
    try:
        report_period = period_ending(period, now)
        if send and smtp is None:
            raise ReportError(
                "--send needs mail configured: set VAULT_DRIFT_SMTP_HOST, VAULT_DRIFT_MAIL_FROM"
                " and VAULT_DRIFT_MAIL_TO"
            )
        history = _load(store, report_period)
        digest, chart = build_digest(history, now), drift_chart(history.cycles, report_period)
        if out is not None or not send:
            _write(render_digest(digest, public_url, chart_data_uri(chart)).html, out)
        if send and smtp is not None:
            try:
                attempt = deliver_digest(store, digest, chart, smtp, public_url, now, "manual")
            except VaultError as exc:
                raise ReportError(f"cannot record the digest mail: {exc}") from None
            on_mail("digest", attempt.result)
            if attempt.result != "sent":
                raise ReportError(f"digest not sent: {attempt.detail}")
    except (ReportError, UnknownPeriod) as exc:
        print(f"vault-drift report: {exc}", file=sys.stderr)
        return 2
    return 0


def send_scheduled_digest(
    store: VaultStore,
    smtp: SmtpSettings | None,
    public_url: str,
    now: datetime,
    on_mail: OnMail = ignore_mail,
) -> MailAttempt | None:
    """Mail the 1d digest once per UTC day, from ``digest_hour_utc`` on; call it every cycle.

    Due when ``now`` is at or past today's digest hour and no scheduled digest was recorded
    as sent today (UTC): a restart never sends twice, a slot missed while the exporter was
    down goes out when it is back the same day. A failure is recorded and retried on the
    next call. Never raises.
    """
    if smtp is None:
        return None
    try:
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        due = midnight + timedelta(hours=store.settings().digest_hour_utc % 24)
        if now < due or scheduled_digest_sent_since(store.mail_log("digest"), midnight):
            return None
        period = period_ending("1d", now)
        history = load_history(store, period)
        digest, chart = build_digest(history, now), drift_chart(history.cycles, period)
        attempt = deliver_digest(store, digest, chart, smtp, public_url, now, "scheduled")
        on_mail("digest", attempt.result)
        return attempt
    except VaultError as exc:
        log.error("scheduled digest: Vault database error: %s", exc)
        return None


def deliver_digest(
    store: VaultStore,
    digest: Digest,
    chart: bytes,
    smtp: SmtpSettings,
    public_url: str,
    now: datetime,
    origin: str,
) -> MailAttempt:
    """Mail the digest (chart attached by Content-ID) and record the attempt."""
    mail = render_digest(digest, public_url)
    message = build_message(
        mail.subject, mail.html, mail.text, {CHART_CID: chart}, smtp, sent_at=now
    )
    label = f"{origin} {digest.period}"
    try:
        send(message, smtp)
    except MailError as exc:
        log.warning("digest (%s) not sent: %s", label, exc)
        attempt = MailAttempt("digest", "failed", detail=f"{label}: {exc}")
    else:
        log.info("digest (%s) sent to %d recipient(s)", label, len(smtp.mail_to))
        attempt = MailAttempt("digest", "sent", detail=label)
    record_attempt(store, now, attempt, len(smtp.mail_to))
    return attempt


def render_digest_file(store: VaultStore, period: str, public_url: str, now: datetime) -> str:
    """The HTML of a digest as a standalone file: the chart inline as a ``data:`` URI."""
    report_period = period_ending(period, now)
    history = load_history(store, report_period)
    chart = drift_chart(history.cycles, report_period)
    return render_digest(build_digest(history, now), public_url, chart_data_uri(chart)).html


def chart_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _load(store: VaultStore, period: Period) -> History:
    try:
        return load_history(store, period)
    except VaultError as exc:
        raise ReportError(
            f"cannot read the drift history ({exc}): has vault-drift run on it?"
        ) from None


def _write(html: str, out: str | None) -> None:
    if out is None or out == "-":
        sys.stdout.write(html)
        return
    try:
        Path(out).write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write {out}: {exc}") from None
