"""``/iam/drift``: thin handlers that parse, call one service method, and serialise."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from exporter.core.document import (
    audience_document,
    drift_document,
    item_document,
    revocations_document,
)
from exporter.core.provider import ProviderError, group_noun
from exporter.core.settings import SettingsError
from exporter.core.times import parse_duration
from exporter.service.checker import UnknownAudience
from exporter.service.syncer import GroupExists, GroupRefused, ProviderUnavailable, SyncRequest
from exporter.web.deps import Admin, ApiError, Reader, Svc, WebServices
from exporter.web.schemas import CheckBody, GroupBody, IgnoreBody, SettingsBody, SyncBody

router = APIRouter(prefix="/iam/drift", tags=["drift"])
MAX_IGNORE = timedelta(days=90)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the request names no target, or two"},
    401: {"description": "missing or invalid token"},
    403: {"description": "not allowed with this token, or the API is disabled"},
    404: {"description": "unknown audience"},
    409: {"description": "conflict: busy, or the state does not allow it"},
    422: {"description": "invalid request"},
    503: {"description": "vault unavailable: the Vault database cannot be read or written"},
}


StatusFilter = Literal["pending", "synced", "drift", "error"]


@router.get("", responses=ERRORS)
def list_drift(
    svc: Svc,
    _: Reader,
    status: StatusFilter | None = None,
    namespace: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="part of the audience name, any case")
    ] = None,
) -> dict[str, Any]:
    """Every audience's drift status (the seed's document), from the last check."""
    return drift_document(svc.snapshots.current, svc.clock(), status, namespace, q=q)


@router.get("/settings", responses=ERRORS)
def get_settings(svc: Svc, _: Reader) -> dict[str, Any]:
    return svc.snapshots.current.settings.as_document()


@router.put("/settings", responses=ERRORS)
def put_settings(body: SettingsBody, svc: Svc, _: Admin) -> dict[str, Any]:
    """Change settings; applied live (a new interval reschedules the checks)."""
    try:
        settings = svc.decisions.update_settings(body.changes())
    except SettingsError as exc:
        raise ApiError(422, "invalid settings", exc.problems) from None
    return settings.as_document()


@router.get("/{audience:path}", responses=ERRORS)
def get_audience(
    audience: str,
    svc: Svc,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """One audience in full: every drifting member, other rules, history and syncs."""
    snapshot = svc.snapshots.current
    check = snapshot.checks.get(audience)
    if check is None:
        raise ApiError(404, "unknown audience", audience)
    history = svc.decisions.history(audience)
    document = audience_document(
        check, snapshot, svc.clock(), limit, offset, history.episodes, history.syncs
    )
    return {**document, **revocations_document(history.revocations)}


@router.post("/check", responses=ERRORS)
def check_now(body: CheckBody, svc: Svc, _: Admin) -> dict[str, Any]:
    """Check now: every audience, or one; answers with the fresh document or item.

    Auto-sync (when on) follows, as after a scheduled check, for the audiences just checked;
    the answer shows the state after it.
    """
    problem = body.target_problem()
    if problem:
        raise ApiError(400, "invalid check target", problem)
    if body.audiences is not None:
        return _notified(body.audiences, svc)
    if body.audience is None:
        return drift_document(svc.cycle.check_all("api"), svc.clock())
    try:
        snapshot = svc.cycle.check_audiences([body.audience], "api")
    except UnknownAudience:
        raise ApiError(404, "unknown audience", body.audience) from None
    return item_document(snapshot.checks[body.audience], snapshot, svc.clock())


def _notified(audiences: list[str], svc: WebServices) -> dict[str, Any]:
    """vault-api's change notification: those audiences only (their Vault rows and one GET
    per group), answered with their items. An unknown name checks nothing: 404 naming it."""
    names = list(dict.fromkeys(audiences))
    try:
        snapshot = svc.cycle.check_audiences(names, "change")
    except UnknownAudience as exc:
        raise ApiError(404, "unknown audience", exc.names) from None
    now = svc.clock()
    return {"items": [item_document(snapshot.checks[name], snapshot, now) for name in names]}


@router.post("/sync", responses=ERRORS)
def sync(body: SyncBody, svc: Svc, role: Admin, request: Request) -> dict[str, Any]:
    """Push Vault's members to Cloudflare (guarded; ``dry_run`` changes nothing)."""
    problem = body.target_problem()
    if problem:
        raise ApiError(400, "no single target", problem)
    trigger = _trigger(request)
    sync_request = SyncRequest(
        None if body.all else [body.audience or ""],
        dry_run=body.dry_run,
        force=body.force,
        trigger=trigger,
        actor=f"{trigger}:{role.value}",
    )
    check_error: str | None = None
    try:
        if body.all:
            outcomes, check_error = svc.cycle.check_then_sync(sync_request, "api")
        else:
            outcomes = svc.cycle.sync(sync_request)
    except UnknownAudience:
        raise ApiError(404, "unknown audience", body.audience) from None
    answer: dict[str, Any] = {
        "dry_run": body.dry_run,
        "results": [o.as_document() for o in outcomes],
    }
    if check_error:  # `all` whose check could not complete: nothing was synced
        answer["check_error"] = check_error
    return answer


def _trigger(request: Request) -> str:
    """Syncs and group creations from the operator page are audited as such."""
    return "page" if request.headers.get("x-vault-drift-page") else "api"


@router.post("/groups", status_code=201, responses=ERRORS)
def create_group(body: GroupBody, svc: Svc, role: Admin, request: Request) -> dict[str, Any]:
    """Create the group of a pending audience in its provider, with Vault's members."""
    trigger = _trigger(request)
    try:
        group_id = svc.cycle.create_group(
            body.audience, actor=f"{trigger}:{role.value}", trigger=trigger
        )
    except UnknownAudience:
        raise ApiError(404, "unknown audience", body.audience) from None
    except ProviderUnavailable as exc:
        raise ApiError(409, "provider unavailable", exc.reason) from None
    except GroupExists as exc:
        raise ApiError(409, "the audience already has a group", str(exc)) from None
    except GroupRefused as exc:
        raise ApiError(409, "cannot create the group", str(exc)) from None
    except ProviderError as exc:
        refused = f"{group_noun(exc.provider).split()[0]} refused the group"
        raise ApiError(409, refused, str(exc)) from None
    snapshot = svc.snapshots.current
    item = item_document(snapshot.checks[body.audience], snapshot, svc.clock())
    return {"audience": body.audience, "created": True, "group_created": bool(group_id), **item}


@router.post("/ignore", responses=ERRORS)
def ignore(body: IgnoreBody, svc: Svc, role: Admin) -> dict[str, Any]:
    """Ignore an audience's drift until a time (default 24 h), with a reason."""
    if body.audience not in svc.snapshots.current.checks:
        raise ApiError(404, "unknown audience", body.audience)
    now = svc.clock()
    until = _until(body, now)
    snapshot = svc.decisions.ignore(body.audience, until, body.reason, f"api:{role.value}")
    return item_document(snapshot.checks[body.audience], snapshot, now)


def _until(body: IgnoreBody, now: Any) -> Any:
    if body.until is not None:
        until = body.until if body.until.tzinfo else body.until.replace(tzinfo=now.tzinfo)
    else:
        try:
            seconds = parse_duration(body.duration if body.duration is not None else "24h")
        except ValueError as exc:
            raise ApiError(422, "invalid duration", str(exc)) from None
        until = now + timedelta(seconds=seconds)
    if until <= now:
        raise ApiError(422, "invalid ignore", "until must be in the future")
    if until - now > MAX_IGNORE:
        raise ApiError(422, "invalid ignore", "an ignore lasts at most 90 days")
    return until


@router.delete("/ignore/{audience:path}", responses=ERRORS)
def unignore(audience: str, svc: Svc, _: Admin) -> dict[str, Any]:
    """Stop ignoring an audience."""
    if audience not in svc.snapshots.current.checks:
        raise ApiError(404, "unknown audience", audience)
    removed, snapshot = svc.decisions.unignore(audience)
    return {"removed": removed, **item_document(snapshot.checks[audience], snapshot, svc.clock())}
