"""The critical-drift mail (once per episode) and the resolution note that follows it.

Whether an audience is critical and not ignored is the snapshot's to say (the one the full
check just published); the store says which episodes have had their mail. "Once" is persisted
with the episode (``critical_notified_at`` / ``resolution_notified_at``), marked only after
the SMTP server accepted the mail: a crash between the two can repeat one mail (at least
once), a failure never loses one (it is retried on the next run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from exporter.core.model import AlertLevel
from exporter.core.snapshot import Snapshot
from exporter.vault.store import EpisodeRecord, VaultError, VaultStore
from reports.digest import member_list
from reports.mail import MailError, SmtpSettings, build_message, send
from reports.mail_log import MailAttempt, OnMail, ignore_mail, record_attempt
from reports.render import (
    CriticalAlert,
    RenderedMail,
    ResolutionNote,
    render_critical,
    render_resolved,
)

log = logging.getLogger("vault_drift.mail")


class CriticalNotifier:
    """Call :meth:`run_once` with each full check's snapshot; it never raises."""

    def __init__(
        self,
        store: VaultStore,
        smtp: SmtpSettings | None,
        public_url: str,
        clock: Callable[[], datetime],
        on_mail: OnMail = ignore_mail,
    ) -> None:
        self.store = store
        self.smtp = smtp
        self.public_url = public_url
        self.clock = clock
        self.on_mail = on_mail

    def run_once(self, snapshot: Snapshot) -> list[MailAttempt]:
        if self.smtp is None:
            return []
        try:
            return self._notify(snapshot, self.smtp)
        except VaultError as exc:
            log.error("drift mail: Vault database error: %s", exc)
            return []
        except Exception:  # the exporter's check loop must survive a bug here
            log.exception("drift mail failed unexpectedly")
            return []

    def _notify(self, snapshot: Snapshot, smtp: SmtpSettings) -> list[MailAttempt]:
        now = self.clock()
        attempts = []
        unmailed = []  # the store is asked only when the snapshot shows a critical drift
        if critical_audiences(snapshot, now):
            unmailed = self.store.episodes_awaiting_critical_mail()
        for alert in critical_alerts(snapshot, unmailed, now):
            mail = render_critical(alert, self.public_url)
            attempt = self._deliver(smtp, mail, "critical", alert.episode_id, alert.audience)
            if attempt.result == "sent":
                self.store.mark_episode_mailed(alert.episode_id, "critical", now)
            attempts.append(attempt)
        for note in resolution_notes(self.store.episodes_awaiting_resolution_note()):
            mail = render_resolved(note, self.public_url)
            attempt = self._deliver(smtp, mail, "resolved", note.episode_id, note.audience)
            if attempt.result == "sent":
                self.store.mark_episode_mailed(note.episode_id, "resolved", now)
            attempts.append(attempt)
        return attempts

    def _deliver(
        self, smtp: SmtpSettings, mail: RenderedMail, kind: str, episode_id: int, audience: str
    ) -> MailAttempt:
        now = self.clock()
        message = build_message(mail.subject, mail.html, mail.text, {}, smtp, sent_at=now)
        try:
            send(message, smtp)
        except MailError as exc:
            log.warning("%s mail for %r (episode %d) not sent: %s", kind, audience, episode_id, exc)
            attempt = MailAttempt(kind, "failed", episode_id, audience, str(exc))
        else:
            log.info("%s mail for %r (episode %d) sent", kind, audience, episode_id)
            attempt = MailAttempt(kind, "sent", episode_id, audience)
        record_attempt(self.store, now, attempt, len(smtp.mail_to))
        self.on_mail(kind, attempt.result)
        return attempt


def critical_audiences(snapshot: Snapshot, now: datetime) -> set[str]:
    """Audiences drifting past the critical threshold and not ignored.

    An ignored audience raises no drift alert (docs/design.md, "Ignore"); its mail goes out
    if the episode is still critical when the ignore expires.
    """
    return {
        name
        for name, check in snapshot.checks.items()
        if snapshot.level(check, now) is AlertLevel.CRITICAL
        and snapshot.ignore_of(name, now) is None
    }


def critical_alerts(
    snapshot: Snapshot, episodes: Iterable[EpisodeRecord], now: datetime
) -> list[CriticalAlert]:
    """The open, not yet mailed ``episodes`` of the snapshot's critical audiences."""
    critical = critical_audiences(snapshot, now)
    alerts = []
    for episode in episodes:
        if episode.closed_at is not None or episode.audience not in critical:
            continue
        check = snapshot.checks[episode.audience]
        notes = {email: note for (_, email), note in check.memory.notes.items()}
        alerts.append(
            CriticalAlert(
                episode_id=episode.id,
                audience=episode.audience,
                namespace=episode.namespace,
                opened_at=episode.opened_at,
                duration_seconds=(now - episode.opened_at).total_seconds(),
                missing=member_list([member.email for member in check.missing], notes=notes),
                extra=member_list([member.email for member in check.extra], notes=notes),
                reason=snapshot.verdict(check, now).reason,
            )
        )
    return alerts


def resolution_notes(episodes: Iterable[EpisodeRecord]) -> list[ResolutionNote]:
    """The closed ``episodes`` whose critical mail went out, as resolution notes."""
    return [
        ResolutionNote(
            e.id, e.audience, e.namespace, e.opened_at, e.closed_at, e.close_reason, e.closed_by
        )
        for e in episodes
        if e.closed_at is not None
    ]
