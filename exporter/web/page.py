"""The operator page: ``GET /`` and its login, rendered server-side from the last snapshot.

The page never calls Cloudflare: it shows the last check. Everything works without
JavaScript: filters and paging are links and a GET form, the details view, the settings and
the ignore form are pages of their own, and actions are forms (``page_forms.py``). The
script enhances it: it acts through the JSON API (``/iam/drift/*``) with the session cookie
and the CSRF header, re-renders the list from ``GET /fragments/live``, opens the details
view inside its card (``GET /fragments/details``) and settings and ignore as dialogs.
Templates are autoescaped: audience names and emails are user data.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context

from exporter.core.document import LIST_LIMIT, audience_document
from exporter.core.provider import provider_title, provider_word
from exporter.core.times import format_time, parse_time, time_ago
from exporter.web.auth import Role
from exporter.web.deps import services as _services
from exporter.web.page_view import (
    ListQuery,
    badge,
    card_id,
    details_url,
    overview,
    sessions_ended,
)
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


@pass_context
def _ago(context: Context, value: datetime | str | None) -> str:
    """ "2 h ago" (``time_ago``), relative to the ``now`` the page is rendered at."""
    moment = parse_time(value) if isinstance(value, str) else value
    if moment is None:
        return "never"
    return time_ago((context["now"] - moment).total_seconds())


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
_ENV.filters.update(
    ago=_ago,
    duration=_duration,
    iso=_iso,
    rule=_rule,
    where=provider_word,
    provider_title=provider_title,
)
_ENV.globals.update(card_id=card_id, details_url=details_url)


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    html = _ENV.get_template(name).render(now=_services(request).clock(), **context)
    return hardened(HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"}))


def hardened(response: R) -> R:
    response.headers.update(SECURITY_HEADERS)
    return response


# -- routes --------------------------------------------------------------------------------


def page_session(request: Request) -> Session | None:
    """The page's session; none at all while the page is disabled (no admin token)."""
    svc = _services(request)
    return read_session(request) if svc.tokens.admin is not None else None


def frame(request: Request, session: Session, **extra: Any) -> dict[str, Any]:
    """What every full page's frame (header, badge, dialogs) needs."""
    svc = _services(request)
    snapshot = svc.snapshots.current
    context: dict[str, Any] = {
        "session": session,
        "can_act": session.role is Role.ADMIN,
        "settings": snapshot.settings,
        "badge": badge(snapshot, svc.clock(), set()),
    }
    context.update(extra)
    return context


def _logged_out(request: Request) -> Response:
    if _services(request).tokens.admin is None:
        return render(request, "disabled.html")
    return hardened(RedirectResponse("/login", status_code=303))


@router.get("/")
def index(request: Request) -> Response:
    """The list: what needs action as cards (one page of them), in sync as a table.

    Filters and paging are in the URL (``?status=&namespace=&q=&offset=``)."""
    session = page_session(request)
    if session is None:
        return _logged_out(request)
    svc = _services(request)
    view = overview(svc.snapshots.current, svc.clock(), ListQuery.parse(request.query_params))
    return render(request, "index.html", **frame(request, session, **view))


@router.get("/fragments/live")
def live_fragment(request: Request) -> Response:
    """The refreshable parts of the page (badge, widget, list), for the page's script."""
    session = page_session(request)
    if session is None:
        return render(request, "expired.html", status=401)
    svc = _services(request)
    view = overview(svc.snapshots.current, svc.clock(), ListQuery.parse(request.query_params))
    return render(request, "live.html", session=session, can_act=session.role is Role.ADMIN, **view)


Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=1000)]
AudienceName = Annotated[str, Query(min_length=1, max_length=200)]


def _details(request: Request, audience: str, offset: int, limit: int) -> dict[str, Any] | None:
    """One audience in full (the API's audience document), members paged by offset/limit."""
    svc = _services(request)
    snapshot = svc.snapshots.current
    check = snapshot.checks.get(audience)
    if check is None:
        return None
    history = svc.decisions.history(audience)
    doc = audience_document(
        check, snapshot, svc.clock(), limit, offset, history.episodes, history.syncs
    )
    shown = max(len(doc["missing"]), len(doc["extra"]))
    total = max(doc["missing_total"], doc["extra_total"])
    return {
        "doc": doc,
        "id": card_id(audience),
        "limit": limit,
        "previous": details_url(audience, max(0, offset - limit), limit) if offset > 0 else None,
        "next": details_url(audience, offset + limit, limit) if offset + limit < total else None,
        "first": offset + 1 if shown else 0,
        "last": offset + shown,
        "total": total,
        "sessions": sessions_ended(history.revocations),
    }


@router.get("/fragments/details")
def details_fragment(
    request: Request, audience: AudienceName, offset: Offset = 0, limit: Limit = LIST_LIMIT
) -> Response:
    """The details view as a panel inside its card (the page's script loads it)."""
    session = page_session(request)
    if session is None:
        return render(request, "expired.html", status=401)
    details = _details(request, audience, offset, limit)
    if details is None:
        return render(request, "expired.html", status=404, message="unknown audience")
    can_act = session.role is Role.ADMIN
    return render(request, "details.html", session=session, can_act=can_act, **details)


@router.get("/details")
def details_page(
    request: Request, audience: AudienceName, offset: Offset = 0, limit: Limit = LIST_LIMIT
) -> Response:
    """The details view as a page of its own: without JavaScript, or opened in a new tab."""
    session = page_session(request)
    if session is None:
        return _logged_out(request)
    details = _details(request, audience, offset, limit)
    if details is None:
        context = frame(request, session, message="No audience has that name.")
        return render(request, "notice_page.html", status=404, **context)
    return render(request, "details_page.html", **frame(request, session, **details))


@router.get("/settings")
def settings_page(request: Request) -> Response:
    """The settings form as a page (the list opens it as a dialog)."""
    session = page_session(request)
    if session is None:
        return _logged_out(request)
    return render(request, "settings_page.html", **frame(request, session))


def audience_form_page(request: Request, audience: str, template: str, **extra: Any) -> Response:
    """A form about one audience as a page of its own: the login page without a session, a
    404 notice for an audience no check knows."""
    session = page_session(request)
    if session is None:
        return _logged_out(request)
    if audience not in _services(request).snapshots.current.checks:
        context = frame(request, session, message="No audience has that name.")
        return render(request, "notice_page.html", status=404, **context)
    return render(request, template, **frame(request, session, audience=audience, **extra))


@router.get("/ignore")
def ignore_page(request: Request, audience: AudienceName) -> Response:
    """The ignore form of one audience as a page (the list opens it as a dialog)."""
    return audience_form_page(request, audience, "ignore_page.html")


@router.get("/login")
def login_form(request: Request) -> Response:
    if _services(request).tokens.admin is None:
        return render(request, "disabled.html")
    return _login_page(request)


def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", status=status, csrf=token, error=error)
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
    user: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    svc = _services(request)
    if svc.tokens.admin is None:
        return render(request, "disabled.html", status=403)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not csrf_matches(Session(Role.READ, expected), csrf):
        return _login_page(request, "The login form expired: please try again.", 400)
    role = svc.tokens.role_of(token.strip())
    if role is None:
        return _login_page(request, "That token is not valid.", 401)
    value, _ = issue_session(request, role, user)
    response = hardened(RedirectResponse("/", status_code=303))
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
        return render(request, "expired.html", status=403, message="missing or invalid CSRF token")
    response = hardened(RedirectResponse("/login", status_code=303))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The page's stylesheet and script (files, so the CSP can forbid inline code)."""
    if name not in STATIC:
        return hardened(Response("not found", status_code=404, media_type="text/plain"))
    response = FileResponse(HERE / "static" / name, media_type=STATIC[name])
    response.headers["Cache-Control"] = "no-cache"
    return hardened(response)


def _secure(request: Request) -> bool:
    """Mark cookies Secure when the page is reached over HTTPS."""
    return request.url.scheme == "https" or _services(request).public_url.startswith("https:")
