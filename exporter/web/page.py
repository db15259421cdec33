"""The operator page: ``GET /`` and its login, rendered server-side from the last snapshot.

The page never calls Cloudflare: it shows the last check. Its JavaScript acts through the
JSON API (``/iam/drift/*``) with the session cookie and the CSRF header, then re-renders
the list from ``GET /fragments/live``; ``GET /fragments/details`` renders one audience in
full. Templates are autoescaped: audience names and emails are user data.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context

from exporter.core.document import LIST_LIMIT, audience_document, ordered
from exporter.core.drift import hint
from exporter.core.model import AlertLevel, AudienceCheck, DriftMember, Status
from exporter.core.snapshot import Snapshot
from exporter.core.times import format_time, parse_time
from exporter.web.auth import Role
from exporter.web.services import WebServices
from exporter.web.services import services as _services
from exporter.web.session import (
    COOKIE,
    LOGIN_COOKIE,
    MAX_AGE_SECONDS,
    Session,
    csrf_matches,
    issue_session,
    read_session,
)

router = APIRouter(include_in_schema=False)
R = TypeVar("R", bound=Response)
HERE = Path(__file__).parent
STATIC = {"page.css": "text/css", "page.js": "text/javascript"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self';"
    " img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
LEVEL_RANK = {AlertLevel.NONE: 0, AlertLevel.INFO: 1, AlertLevel.WARNING: 2, AlertLevel.CRITICAL: 3}


@pass_context
def _ago(context: Context, value: datetime | str | None) -> str:
    """ "2 min ago", relative to the ``now`` the page is rendered at."""
    moment = parse_time(value) if isinstance(value, str) else value
    if moment is None:
        return "never"
    seconds = int((context["now"] - moment).total_seconds())
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, " min")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"  # pragma: no cover


@pass_context
def _hint(context: Context, member: DriftMember) -> str:
    """The core's hint, its "2 h ago" measured from the ``now`` the page is rendered at."""
    return hint(member, context["now"])


def _duration(seconds: int) -> str:
    """The largest whole unit: 900 -> 15m, 86400 -> 24h (as the settings form shows them)."""
    for size, unit in ((3600, "h"), (60, "m")):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _iso(value: datetime | str | None) -> str:
    return (format_time(value) if isinstance(value, datetime) else value) or ""


def _rule(rule: dict[str, Any]) -> str:
    return json.dumps(rule, sort_keys=True)


_ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(ago=_ago, duration=_duration, iso=_iso, rule=_rule)
_ENV.globals.update(hint=_hint, card_id=lambda name: card_id(name))  # defined below


def _render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    html = _ENV.get_template(name).render(now=_services(request).clock(), **context)
    return _hardened(HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"}))


def _hardened(response: R) -> R:
    response.headers.update(SECURITY_HEADERS)
    return response


def card_id(audience: str) -> str:
    """An element id for an audience: names are user data, ids must be plain."""
    return "aud-" + hashlib.sha256(audience.encode()).hexdigest()[:12]


# -- view model ----------------------------------------------------------------------------


def _card(check: AudienceCheck, snapshot: Snapshot, now: datetime) -> dict[str, Any]:
    name = check.audience.audience
    verdict = snapshot.verdict(check, now)
    return {
        "audience": name,
        "id": card_id(name),
        "namespace": check.audience.namespace,
        "status": str(check.status),
        "level": str(verdict.level),
        "reason": verdict.reason,  # the side that set the level: missing | extra
        "ignore": snapshot.ignore_of(name, now),
        "check": check,
        "missing": check.missing[:LIST_LIMIT],
        "extra": check.extra[:LIST_LIMIT],
        "missing_more": max(0, len(check.missing) - LIST_LIMIT),
        "extra_more": max(0, len(check.extra) - LIST_LIMIT),
    }


def _badge(snapshot: Snapshot, now: datetime) -> dict[str, Any]:
    """The header badge: audiences alerting, coloured by the worst level (error >= warning)."""
    worst, entries = AlertLevel.NONE, []
    for check in ordered(snapshot.alerting(now)):
        level = snapshot.level(check, now)
        if check.status is Status.ERROR:
            level = max(level, AlertLevel.WARNING, key=LEVEL_RANK.__getitem__)
            summary = "API error"
        else:
            parts = [(len(check.missing), "missing"), (len(check.extra), "extra")]
            summary = ", ".join(f"{n} {word}" for n, word in parts if n)
        worst = max(worst, level, key=LEVEL_RANK.__getitem__)
        entries.append({"audience": check.audience.audience, "summary": summary})
    return {"count": len(entries), "level": str(worst), "entries": entries}


def _live(svc: WebServices) -> dict[str, Any]:
    snapshot, now = svc.snapshots.current, svc.clock()
    return {
        "snapshot": snapshot,
        "counts": snapshot.counts(),
        "badge": _badge(snapshot, now),
        "cards": [_card(c, snapshot, now) for c in ordered(snapshot.checks.values())],
    }


# -- routes --------------------------------------------------------------------------------


def _session(request: Request) -> Session | None:
    svc = _services(request)
    return read_session(request) if svc.tokens.admin is not None else None


@router.get("/")
def index(request: Request) -> Response:
    svc = _services(request)
    if svc.tokens.admin is None:
        return _render(request, "disabled.html")
    session = _session(request)
    if session is None:
        return _hardened(RedirectResponse("/login", status_code=303))
    return _render(
        request,
        "index.html",
        session=session,
        can_act=session.role is Role.ADMIN,
        settings=svc.snapshots.current.settings,
        **_live(svc),
    )


@router.get("/fragments/live")
def live_fragment(request: Request) -> Response:
    """The refreshable parts of the page (badge, widget, list), for the page's script."""
    session = _session(request)
    if session is None:
        return _render(request, "expired.html", status=401)
    live = _live(_services(request))
    return _render(request, "live.html", can_act=session.role is Role.ADMIN, **live)


@router.get("/fragments/details")
def details_fragment(
    request: Request,
    audience: Annotated[str, Query(min_length=1, max_length=200)],
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = LIST_LIMIT,
) -> Response:
    """One audience in full (the API's audience document), members paged by offset/limit."""
    if _session(request) is None:
        return _render(request, "expired.html", status=401)
    svc = _services(request)
    snapshot = svc.snapshots.current
    check = snapshot.checks.get(audience)
    if check is None:
        return _render(request, "expired.html", status=404, message="unknown audience")
    history = svc.operator.history(audience)
    doc = audience_document(
        check, snapshot, svc.clock(), limit, offset, history.episodes, history.syncs
    )
    shown = max(len(doc["missing"]), len(doc["extra"]))
    total = max(doc["missing_total"], doc["extra_total"])
    return _render(
        request,
        "details.html",
        doc=doc,
        id=card_id(audience),
        previous=max(0, offset - limit) if offset > 0 else None,
        next=offset + limit if offset + limit < total else None,
        first=offset + 1 if shown else 0,
        last=offset + shown,
        total=total,
    )


@router.get("/login")
def login_form(request: Request) -> Response:
    if _services(request).tokens.admin is None:
        return _render(request, "disabled.html")
    return _login_page(request)


def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = _render(request, "login.html", status=status, csrf=token, error=error)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        path="/login",
        secure=_secure(request),
    )
    return response


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    svc = _services(request)
    if svc.tokens.admin is None:
        return _render(request, "disabled.html", status=403)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not csrf_matches(Session(Role.READ, expected), csrf):
        return _login_page(request, "The login form expired: please try again.", 400)
    role = svc.tokens.role_of(token.strip())
    if role is None:
        return _login_page(request, "That token is not valid.", 401)
    value, _ = issue_session(request, role)
    response = _hardened(RedirectResponse("/", status_code=303))
    response.set_cookie(
        COOKIE,
        value,
        max_age=MAX_AGE_SECONDS,
        httponly=True,
        samesite="strict",
        path="/",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    session = read_session(request)
    if session is not None and not csrf_matches(session, csrf):
        return _render(request, "expired.html", status=403, message="missing or invalid CSRF token")
    response = _hardened(RedirectResponse("/login", status_code=303))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The page's stylesheet and script (files, so the CSP can forbid inline code)."""
    if name not in STATIC:
        return _hardened(Response("not found", status_code=404, media_type="text/plain"))
    response = FileResponse(HERE / "static" / name, media_type=STATIC[name])
    response.headers["Cache-Control"] = "no-cache"
    return _hardened(response)


def _secure(request: Request) -> bool:
    """Mark cookies Secure when the page is reached over HTTPS."""
    return request.url.scheme == "https" or _services(request).public_url.startswith("https:")
