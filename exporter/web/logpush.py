"""``POST /iam/drift/feed/logpush``: Cloudflare Logpush deliveries of the account audit-log
dataset, taken like polled entries (README, "Change feed").

Authenticated by ``Authorization: Bearer <VAULT_DRIFT_LOGPUSH_TOKEN>`` (the job's
``header_Authorization`` destination parameter), a token of its own: it can push entries and
nothing else. Without the variable the endpoint is off: no token is accepted (401; 403 to
the admin or read token, which are not for it).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from exporter.cloudflare.logpush import DeliveryError, parse_delivery
from exporter.web.auth import bearer
from exporter.web.deps import ApiError
from exporter.web.deps import services as _services

router = APIRouter(prefix="/iam/drift/feed", tags=["feed"])
MAX_UPLOAD_BYTES = 16 * 1024 * 1024  # compressed


@router.post(
    "/logpush",
    summary="Cloudflare Logpush deliveries of the account audit-log dataset",
    responses={
        400: {"description": "an unreadable delivery (not gzip or NDJSON)"},
        401: {"description": "missing or wrong Logpush token"},
        403: {"description": "the admin or read token, which are not for this endpoint"},
        409: {"description": "busy: a check or sync holds the exporter"},
        413: {"description": "a delivery larger than 16 MiB"},
        503: {"description": "vault unavailable: the Vault database cannot be read or written"},
    },
)
async def logpush(request: Request) -> JSONResponse:
    svc = _services(request)
    presented = bearer(request.headers.get("authorization")) or ""
    expected = svc.logpush_token if svc.feed is not None else None
    if expected is None or not hmac.compare_digest(presented.encode(), expected.encode()):
        off = (
            "the endpoint is off: VAULT_DRIFT_LOGPUSH_TOKEN is not set"
            if expected is None
            else None
        )
        if svc.tokens.role_of(presented) is not None:  # the admin or read token: not for this
            raise ApiError(403, "this endpoint takes the Logpush token only", off)
        raise ApiError(401, "missing or invalid Logpush token", off)
    body = await _body(request)
    try:
        delivery = parse_delivery(body)
    except DeliveryError as exc:
        raise ApiError(400, "unreadable delivery", str(exc)) from None
    feed = svc.feed
    assert feed is not None  # a token is expected only where a feed runs
    # The checks wait for the cycle's lock: in a worker thread, never on the event loop.
    about, checked = await run_in_threadpool(feed.take_pushed, delivery.entries)
    return JSONResponse(
        {
            "entries": len(delivery.entries),
            "about_groups": about,
            "checked": len(checked),
            "other": delivery.other,
            "malformed": delivery.malformed,
        }
    )


async def _body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise ApiError(413, "delivery too large", f"at most {MAX_UPLOAD_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
