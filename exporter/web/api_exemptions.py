"""``/iam/drift/{audience}/exemptions``: per-member exemptions (docs/exemptions.md).

Registered before the API's catch-all ``GET /iam/drift/{audience}`` so that these paths are
never read as an audience's name. Bad input answers 400 with every problem named.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from exporter.core.document import exemption_document, item_document
from exporter.core.times import parse_duration
from exporter.service.checker import UnknownAudience
from exporter.service.exemptions import ExemptionError
from exporter.web.api import ERRORS
from exporter.web.auth import Role, bearer
from exporter.web.deps import Admin, ApiError, Reader, Svc, WebServices
from exporter.web.schemas import ExemptionBody
from exporter.web.session import read_session

router = APIRouter(prefix="/iam/drift", tags=["exemptions"])
RESPONSES = {**ERRORS, 400: {"description": "invalid exemption: every problem is named"}}
BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ExemptionBody.model_json_schema()}},
    }
}


def owner_of(request: Request, role: Role) -> str:
    """Who makes it: the page's user (the name given at login), or the API token's name."""
    session = None if bearer(request.headers.get("authorization")) else read_session(request)
    if session is not None:
        return f"page:{session.user or role.value}"
    source = "page" if request.headers.get("x-vault-drift-page") else "api"
    return f"{source}:{role.value}"


@router.get("/{audience:path}/exemptions", responses=RESPONSES)
def list_exemptions(audience: str, svc: Svc, _: Reader) -> dict[str, Any]:
    """The audience's exemptions in force, and the last ones that ended (the audit)."""
    try:
        current = svc.exemptions.listing(audience)
    except UnknownAudience:
        raise ApiError(404, "unknown audience", audience) from None
    check = svc.snapshots.current.checks.get(audience)
    ended = [e for e in svc.decisions.vault.exemption_log(audience) if e.end_reason is not None]
    return {
        "audience": audience,
        "exemptions": [exemption_document(e, check) for e in current],
        "ended": [exemption_document(e, None) for e in ended],
    }


@router.post(
    "/{audience:path}/exemptions", status_code=201, responses=RESPONSES, openapi_extra=BODY
)
async def create_exemption(
    audience: str, request: Request, svc: Svc, role: Admin
) -> dict[str, Any]:
    """Exempt one member of the audience on one side until a time (at most 90 days), with
    a reason; replaces the member's exemption in force. The audience is re-checked."""
    if audience not in svc.snapshots.current.checks:
        raise ApiError(404, "unknown audience", audience)
    body = _body(await request.body())
    expires_at = _expires_at(body, svc.clock())
    # Making it re-checks the audience (a Cloudflare read): off the event loop.
    made: dict[str, Any] = await run_in_threadpool(
        _made, svc, audience, body, expires_at, owner_of(request, role)
    )
    return made


def _made(
    svc: WebServices, audience: str, body: ExemptionBody, expires_at: datetime, owner: str
) -> dict[str, Any]:
    try:
        made = svc.exemptions.exempt(
            audience, body.email, body.side, body.reason, expires_at, owner
        )
    except UnknownAudience:
        raise ApiError(404, "unknown audience", audience) from None
    except ExemptionError as exc:
        raise ApiError(400, "invalid exemption", exc.problems) from None
    snapshot = svc.snapshots.current
    check = snapshot.checks[audience]
    return {
        "exemption": exemption_document(made, check),
        **item_document(check, snapshot, svc.clock()),
    }


@router.delete("/{audience:path}/exemptions/{email}", responses=RESPONSES)
def delete_exemption(
    audience: str, email: str, request: Request, svc: Svc, role: Admin
) -> dict[str, Any]:
    """End the member's exemption now: it drifts again from this moment."""
    try:
        ended = svc.exemptions.end(audience, email, owner_of(request, role))
    except UnknownAudience:
        raise ApiError(404, "unknown audience", audience) from None
    if not ended:
        raise ApiError(404, "no exemption in force", email)
    snapshot = svc.snapshots.current
    return {"removed": True, **item_document(snapshot.checks[audience], snapshot, svc.clock())}


def _body(raw: bytes) -> ExemptionBody:
    try:
        return ExemptionBody.model_validate(json.loads(raw or b"null"))
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid exemption", f"not JSON: {exc.msg}") from None
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ApiError(400, "invalid exemption", problems) from None


def _expires_at(body: ExemptionBody, now: datetime) -> datetime:
    if body.expires_at is not None:
        at = body.expires_at
        return at if at.tzinfo else at.replace(tzinfo=now.tzinfo)
    try:
        seconds = parse_duration(body.duration)
    except (ValueError, OverflowError) as exc:
        raise ApiError(400, "invalid exemption", [f"duration: {exc}"]) from None
    if seconds > timedelta(days=3650).total_seconds():
        raise ApiError(400, "invalid exemption", ["duration: an exemption lasts at most 90 days"])
    return now + timedelta(seconds=seconds)
