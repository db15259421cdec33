"""The operator page's exemptions: a member's "Exempt…" form, and ending one (plain forms,
CSRF-protected, refused to a read-only session, as the page's other actions).

The owner is the page's user: the name given at login, else the session's role.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from exporter.core.exemptions import SIDES
from exporter.core.times import format_time, parse_duration
from exporter.service.exemptions import ExemptionError
from exporter.web.deps import services as _services
from exporter.web.page import audience_form_page, frame, render
from exporter.web.page_forms import _acting, _done, _guarded, _known
from exporter.web.session import Session

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form(max_length=500)]
Text = Annotated[str, Query(max_length=320)]
EXEMPT_CHOICES = ("1d", "7d", "30d", "90d")  # the choices of exempt_form.html


def owner(session: Session) -> str:
    return f"page:{session.user or session.role.value}"


@router.get("/exempt")
def exempt_page(
    request: Request, audience: Text = "", email: Text = "", side: Text = ""
) -> Response:
    """The "Exempt…" form of one member, as a page."""
    chosen = side if side in SIDES else "extra"
    return audience_form_page(request, audience, "exempt_page.html", email=email, side=chosen)


@router.post("/forms/exempt")
def exempt_form(
    request: Request,
    csrf: Field = "",
    audience: Field = "",
    email: Field = "",
    side: Field = "",
    duration: Field = "",
    reason: Field = "",
) -> Response:
    return _guarded(_exempt)(request, csrf, audience, email.strip(), side, duration, reason)


def _exempt(
    request: Request, csrf: str, audience: str, email: str, side: str, duration: str, reason: str
) -> Response:
    session = _acting(request, csrf)
    _known(request, session, audience)
    svc = _services(request)
    problems = [] if duration in EXEMPT_CHOICES else ["Choose how long."]
    if not problems:
        until = svc.clock() + timedelta(seconds=parse_duration(duration))
        try:
            svc.exemptions.exempt(audience, email, side, reason, until, owner(session))
        except ExemptionError as exc:
            problems = exc.problems
    if problems:
        context = frame(
            request,
            session,
            audience=audience,
            email=email,
            side=side if side in SIDES else "extra",
            reason=reason,
            error="; ".join(problems),
        )
        return render(request, "exempt_page.html", 422, **context)
    message = f"Exempted {email.lower()} ({side}) in {audience} until {format_time(until)}."
    return _done(request, session, audience, message)


@router.post("/forms/unexempt")
def unexempt_form(
    request: Request, csrf: Field = "", audience: Field = "", email: Field = ""
) -> Response:
    return _guarded(_unexempt)(request, csrf, audience, email)


def _unexempt(request: Request, csrf: str, audience: str, email: str) -> Response:
    session = _acting(request, csrf)
    _known(request, session, audience)
    ended = _services(request).exemptions.end(audience, email, owner(session))
    message = (
        f"The exemption of {email} in {audience} has ended: the member drifts again from now."
        if ended
        else f"{email} has no exemption in force in {audience}."
    )
    return _done(request, session, audience, message)
