"""Mail bodies rendered with Jinja: the digest, the critical-drift mail, the resolution note.

HTML templates (``*.html.j2``) are autoescaped: audience names and emails are user data.
Text templates (``*.txt.j2``) are not: a text/plain part shows characters as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from exporter.core.model import Side
from reports.digest import Digest, MemberList
from reports.duration import human_duration, utc_text

CHART_CID = "drift-chart"

CLOSE_REASONS = {
    "sync": "fixed by a sync from vault-drift",
    "external": "fixed outside vault-drift (the group was corrected directly)",
    "removed": "the audience was removed from Vault",
}


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CriticalAlert:
    """An open episode that has turned critical."""

    episode_id: int
    audience: str
    namespace: str
    opened_at: datetime
    duration_seconds: float
    missing: MemberList
    extra: MemberList
    reason: Side | None = None  # the side that made it critical

    @property
    def kind(self) -> str | None:
        """What the drift is for people: an exposure (extra) or an outage (missing)."""
        return (
            {Side.EXTRA: "exposure", Side.MISSING: "outage"}.get(self.reason)
            if self.reason
            else None
        )


@dataclass(frozen=True)
class ResolutionNote:
    """A closed episode whose critical mail went out."""

    episode_id: int
    audience: str
    namespace: str
    opened_at: datetime
    closed_at: datetime
    close_reason: str | None
    closed_by: str | None


def fix_link(public_url: str, audience: str) -> str:
    """The operator page (served at ``/``) scrolled to the audience's card."""
    return f"{public_url.rstrip('/')}/#audience-{quote(audience, safe='')}"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",), default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["utc"] = utc_text
    env.filters["duration"] = human_duration
    env.globals["fix_link"] = fix_link
    env.globals["close_reasons"] = CLOSE_REASONS
    return env


_ENV = _environment()


def _render(name: str, **context: object) -> tuple[str, str]:
    html = _ENV.get_template(f"{name}.html.j2").render(**context)
    text = _ENV.get_template(f"{name}.txt.j2").render(**context)
    return html, text


def render_digest(
    digest: Digest, public_url: str, chart_src: str = f"cid:{CHART_CID}"
) -> RenderedMail:
    """``chart_src``: ``cid:drift-chart`` in a mail, a ``data:`` URI in a file."""
    html, text = _render("digest", d=digest, public_url=public_url.rstrip("/"), chart_src=chart_src)
    return RenderedMail(digest.subject, html, text)


def render_critical(alert: CriticalAlert, public_url: str) -> RenderedMail:
    subject = f'[TPB Vault] Drift detected in "{_one_line(alert.audience)}"'
    if alert.kind:
        subject += f" ({alert.kind})"
    html, text = _render("critical", a=alert, public_url=public_url)
    return RenderedMail(subject, html, text)


def render_resolved(note: ResolutionNote, public_url: str) -> RenderedMail:
    subject = f'[TPB Vault] Drift resolved in "{_one_line(note.audience)}"'
    lasted = human_duration((note.closed_at - note.opened_at).total_seconds())
    html, text = _render("resolved", n=note, lasted=lasted, public_url=public_url)
    return RenderedMail(subject, html, text)


def _one_line(value: str) -> str:
    """A header value never carries a line break (header injection)."""
    return " ".join(value.split())
