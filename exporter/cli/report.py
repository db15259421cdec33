"""``vault-drift report``: the digest for a period, to a file and/or by mail."""

from __future__ import annotations

from exporter.clock import utc_now
from exporter.config import Config
from exporter.runtime.mailing import smtp_settings
from exporter.runtime.wiring import open_vault
from reports.command import run_report


def report_command(config: Config, period: str, out: str | None, send: bool) -> int:
    """``vault-drift report``: needs only the Vault DB (and SMTP for --send)."""
    store = open_vault(config, seed=False)  # VaultError (exit 2): missing or foreign file
    return run_report(
        store,
        period,
        out,
        send,
        smtp_settings(config),
        config.effective_public_url(),
        utc_now(),
    )
