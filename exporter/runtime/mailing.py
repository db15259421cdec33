"""Bridge from the exporter to ``reports``: mail settings, the critical-drift hook, the digest."""

from __future__ import annotations

import logging
from collections.abc import Callable

from exporter.config import Config
from exporter.core.snapshot import Snapshot
from exporter.metrics import ExporterMetrics
from exporter.runtime.wiring import Runtime
from reports.command import send_scheduled_digest
from reports.mail import SmtpSettings
from reports.notify import CriticalNotifier

log = logging.getLogger("vault_drift.mailing")
DIGEST_POLL_SECONDS = 600


def smtp_settings(config: Config) -> SmtpSettings | None:
    """Mail is on only when a server, a sender and recipients are configured."""
    if not config.mail_enabled:
        return None
    assert config.smtp_host is not None and config.mail_from is not None
    password = config.smtp_password.get_secret_value() if config.smtp_password else None
    return SmtpSettings(
        host=config.smtp_host,
        port=config.smtp_port,
        user=config.smtp_user,
        password=password,
        starttls=config.smtp_starttls,
        mail_from=config.mail_from,
        mail_to=list(config.mail_to),
    )


def install_mail(
    runtime: Runtime, counters: ExporterMetrics
) -> list[tuple[int, Callable[[], None]]]:
    """Send the critical-drift mail after each full check; return the digest job.

    The digest job runs every 10 minutes and sends only when the day's digest is due (its
    hour is a setting), so a changed hour applies without a restart and nothing goes twice.
    """
    smtp = smtp_settings(runtime.config)
    assert smtp is not None, "install_mail is called only when mail is on"
    public_url = runtime.config.effective_public_url()
    vault, clock = runtime.services.vault, runtime.services.cycle.clock
    notifier = CriticalNotifier(vault, smtp, public_url, clock, counters.mailed)

    def after_check(snapshot: Snapshot) -> None:
        notifier.run_once(snapshot)

    def digest() -> None:
        send_scheduled_digest(vault, smtp, public_url, clock(), counters.mailed)

    runtime.services.cycle.after_full_check.append(after_check)
    return [(DIGEST_POLL_SECONDS, digest)]
