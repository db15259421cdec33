"""The operator page's actions as plain HTML forms, for a browser without JavaScript.

Each form posts the session's CSRF token as the ``csrf`` field; a read-only session is
refused (403), as the API refuses it. The services called are the API's: a sync from here
is the same guarded, audited sync (trigger ``page``). Sync Now and Fix All show the dry run
first, then a Confirm form (and Force… when a guard blocks), as the script does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from exporter.core.provider import ProviderError, group_noun
from exporter.core.settings import SettingsError
from exporter.core.times import format_time, parse_duration
from exporter.service.syncer import GroupExists, GroupRefused, ProviderUnavailable, SyncRequest
from exporter.service.work_lock import Busy
from exporter.vault.store import VaultError
from exporter.web.auth import Role
from exporter.web.deps import services as _services
from exporter.web.page import frame, page_session, render
from exporter.web.page_view import card_id
from exporter.web.session import Session, csrf_matches

router = APIRouter(prefix="/forms", include_in_schema=False)
Field = Annotated[str, Form(max_length=500)]
IGNORE_CHOICES = ("1h", "4h", "24h", "7d", "30d")  # the choices of ignore_form.html
DURATIONS = (
    "check_interval_seconds",
    "warning_threshold_seconds",
    "critical_threshold_seconds",
    "extra_warning_threshold_seconds",
    "extra_critical_threshold_seconds",
)
# The change feed's durations: applied when the form carries them (README, "Change feed").
FEED_DURATIONS = ("feed_interval_seconds", "feed_overlap_seconds", "full_check_interval_seconds")
ACTOR = "page:admin"


class Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _acting(request: Request, csrf: str) -> Session:
    """The admin session this form was posted from, or the page that says why not."""
    session = page_session(request)
    if session is None:
        raise Refused(render(request, "expired.html", status=401))
    if not csrf_matches(session, csrf):
        raise Refused(_notice(request, session, "Missing or invalid CSRF token.", 403))
    if session.role is not Role.ADMIN:
        raise Refused(_notice(request, session, "The read token cannot change anything.", 403))
    return session


def _notice(request: Request, session: Session, message: str, status: int = 200) -> Response:
    return render(request, "notice_page.html", status, **frame(request, session, message=message))


def _known(request: Request, session: Session, audience: str) -> None:
    if audience not in _services(request).snapshots.current.checks:
        raise Refused(_notice(request, session, "No audience has that name.", 404))


def _done(request: Request, session: Session, audience: str, message: str) -> Response:
    """The outcome of an action, with the way back to the audience's card."""
    context = frame(request, session, message=message, back=f"/#{card_id(audience)}")
    return render(request, "notice_page.html", **context)


def _guarded(handler: Any) -> Any:
    """Turn ``Refused``, a busy lock and an unreadable Vault into their pages."""

    def run(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            response: Response = handler(request, *args, **kwargs)
        except Refused as refused:
            return refused.response
        except Busy as busy:
            session = page_session(request)
            assert session is not None  # _acting ran before any work
            return _notice(request, session, f"Busy: {busy}. Try again in a moment.", 409)
        except VaultError as exc:
            session = page_session(request)
            assert session is not None
            return _notice(request, session, f"Vault unavailable: {exc}", 503)
        return response

    return run


@router.post("/sync")
def sync_form(
    request: Request,
    csrf: Field = "",
    audience: Field = "",
    all: Field = "",
    confirm: Field = "",
    force: Field = "",
) -> Response:
    return _guarded(_sync)(request, csrf, audience, bool(all), bool(confirm), bool(force))


def _sync(
    request: Request, csrf: str, audience: str, every: bool, confirm: bool, force: bool
) -> Response:
    session = _acting(request, csrf)
    if not every:
        _known(request, session, audience)
    svc = _services(request)
    sync_request = SyncRequest(
        None if every else [audience],
        dry_run=not confirm,
        force=force,
        trigger="page",
        actor=ACTOR,
    )
    check_error = None
    if every:
        outcomes, check_error = svc.cycle.check_then_sync(sync_request, "page")
    else:
        outcomes = svc.cycle.sync(sync_request)
    results = [o.as_document() for o in outcomes]
    context = frame(
        request,
        session,
        results=results,
        dry_run=not confirm,
        force=force,
        target={"all": "1"} if every else {"audience": audience},
        check_error=check_error,
        back="/" if every else f"/#{card_id(audience)}",
    )
    return render(request, "sync_page.html", **context)


@router.post("/retry")
def retry_form(request: Request, csrf: Field = "", audience: Field = "") -> Response:
    return _guarded(_retry)(request, csrf, audience)


def _retry(request: Request, csrf: str, audience: str) -> Response:
    session = _acting(request, csrf)
    _known(request, session, audience)
    check = _services(request).cycle.check_audiences([audience], "page").checks[audience]
    error = f" ({check.error_message})" if check.error_message else ""
    return _done(request, session, audience, f"Checked {audience}: now {check.status}{error}.")


@router.post("/create-group")
def create_group_form(request: Request, csrf: Field = "", audience: Field = "") -> Response:
    return _guarded(_create_group)(request, csrf, audience)


def _create_group(request: Request, csrf: str, audience: str) -> Response:
    session = _acting(request, csrf)
    _known(request, session, audience)
    svc = _services(request)
    try:
        svc.cycle.create_group(audience, actor=ACTOR, trigger="page")
    except (GroupExists, GroupRefused, VaultError, ProviderError, ProviderUnavailable) as exc:
        return _notice(request, session, f"Cannot create the group of {audience}: {exc}", 409)
    check = svc.snapshots.current.checks[audience]
    noun = group_noun(check.audience.provider)
    return _done(request, session, audience, f"{noun} created; status now {check.status}.")


@router.post("/ignore")
def ignore_form(
    request: Request,
    csrf: Field = "",
    audience: Field = "",
    duration: Field = "",
    reason: Field = "",
) -> Response:
    return _guarded(_ignore)(request, csrf, audience, duration, reason.strip())


def _ignore(request: Request, csrf: str, audience: str, duration: str, reason: str) -> Response:
    session = _acting(request, csrf)
    _known(request, session, audience)
    if duration not in IGNORE_CHOICES or not reason:
        context = frame(
            request, session, audience=audience, error="Choose a duration and give a reason."
        )
        return render(request, "ignore_page.html", 422, **context)
    svc = _services(request)
    until = svc.clock() + timedelta(seconds=parse_duration(duration))
    svc.decisions.ignore(audience, until, reason, ACTOR)
    message = f"Ignored {audience} until {format_time(until)} — {reason}"
    return _done(request, session, audience, message)


@router.post("/unignore")
def unignore_form(request: Request, csrf: Field = "", audience: Field = "") -> Response:
    return _guarded(_unignore)(request, csrf, audience)


def _unignore(request: Request, csrf: str, audience: str) -> Response:
    session = _acting(request, csrf)
    _known(request, session, audience)
    _services(request).decisions.unignore(audience)
    return _done(request, session, audience, f"{audience} is no longer ignored.")


@router.post("/settings")
def settings_form(
    request: Request,
    csrf: Field = "",
    auto_sync: Field = "",
    check_interval_seconds: Field = "",
    warning_threshold_seconds: Field = "",
    critical_threshold_seconds: Field = "",
    extra_warning_threshold_seconds: Field = "",
    extra_critical_threshold_seconds: Field = "",
    revoke_sessions: Field = "",
    cloudflare_feed: Field = "",
    feed_interval_seconds: Field = "",
    feed_overlap_seconds: Field = "",
    full_check_interval_seconds: Field = "",
) -> Response:
    fields = {
        "csrf": csrf,
        "auto_sync": auto_sync,
        "check_interval_seconds": check_interval_seconds,
        "warning_threshold_seconds": warning_threshold_seconds,
        "critical_threshold_seconds": critical_threshold_seconds,
        "extra_warning_threshold_seconds": extra_warning_threshold_seconds,
        "extra_critical_threshold_seconds": extra_critical_threshold_seconds,
        "revoke_sessions": revoke_sessions,
        "cloudflare_feed": cloudflare_feed,
        "feed_interval_seconds": feed_interval_seconds,
        "feed_overlap_seconds": feed_overlap_seconds,
        "full_check_interval_seconds": full_check_interval_seconds,
    }
    return _guarded(_settings)(request, fields)


def _settings(request: Request, fields: dict[str, str]) -> Response:
    session = _acting(request, fields.get("csrf", ""))
    changes: dict[str, Any] = {"auto_sync": fields.get("auto_sync", "")}
    if fields.get("cloudflare_feed"):  # a page from before the feed's settings sends none
        changes["cloudflare_feed"] = fields["cloudflare_feed"]
    errors: dict[str, str] = {}
    flag = fields.get("revoke_sessions", "")
    if flag in ("on", "off"):
        changes["revoke_sessions"] = flag == "on"
    elif flag:
        errors["revoke_sessions"] = "choose on or off"
    given = [n for n in FEED_DURATIONS if fields.get(n, "").strip()]
    for name in (*DURATIONS, *given):
        try:
            changes[name] = parse_duration(fields.get(name, ""))
        except ValueError:
            errors[name] = "write a duration like 30s, 15m, 1h or 1d"
    if not errors:
        try:
            _services(request).decisions.update_settings(changes)
        except SettingsError as exc:
            errors = dict(exc.problems)
    if errors:
        context = frame(request, session, errors=errors, typed=fields)
        return render(request, "settings_page.html", 422, **context)
    context = frame(request, session, saved=True)
    return render(request, "settings_page.html", **context)
