"""The simulated Cloudflare's Access sessions and ``revoke_user`` (docs/sessions.md).

What it models (Cloudflare's OpenAPI schema, ``cloudflare/api-schemas`` ``openapi.json``,
operation ``zero-trust-organization-revoke-all-access-tokens-for-a-user``):
- ``POST /accounts/{acct}/access/organizations/revoke_user``: a required JSON body with a
  required string ``email``; optional ``devices`` and ``warp_session_reauth`` (booleans) and
  ``user_uid`` (string); query ``devices`` (``true`` | ``false``). A body that is not such an
  object is a 400, code 12130 ``access.api.error.invalid_request`` with ``source.pointer``.
  Success is ``{"success": true, "errors": [], "messages": [], "result": true}``
  (``access_empty_response``); any other method on the path has no route (404, 7000);
- the permission: the schema's ``x-api-token-group`` is "Access: Organizations, Identity
  Providers, and Groups Write"; a token without it (``denied``) gets 403, code 10000;
- sessions per email: a person in a group "logs in" (``login``) and holds a session until it
  is revoked; ``revoke_user`` ends every session of that email (case-insensitive, as Access
  matches identities), and succeeds for an email with no session too (revoking is
  idempotent: Cloudflare documents no "not found" for it). Every call is recorded.

What it does not model: zone-scoped organizations, device revocation and WARP sessions (the
flags are validated, recorded, and have no other effect), ``user_uid`` lookups, session
durations running out by themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from exporter.demo.simulator_wire import (
    Reply,
    authentication_error,
    invalid_request,
    json_object,
    no_route,
    now_iso,
    success,
)

OPTIONAL_FLAGS = ("devices", "warp_session_reauth")


class Sessions:
    """Access sessions of one account, and the revocations asked for; thread-safe."""

    def __init__(self, clock: Callable[[], str] = now_iso) -> None:
        self.clock = clock
        self.denied: set[str] = set()  # tokens without the Access write permission
        self._sessions: dict[str, int] = {}  # lowercased email -> live sessions
        self._revocations: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def login(self, email: str) -> None:
        """A person opens an Access application: one more live session."""
        with self._lock:
            key = email.lower()
            self._sessions[key] = self._sessions.get(key, 0) + 1

    def live(self, email: str) -> int:
        with self._lock:
            return self._sessions.get(email.lower(), 0)

    def revocations(self) -> list[dict[str, Any]]:
        """Every accepted call, oldest first: ``email``, ``at``, ``ended`` (sessions it ended),
        ``devices``, ``warp_session_reauth``."""
        with self._lock:
            return [dict(r) for r in self._revocations]

    def revoked_emails(self) -> list[str]:
        return [r["email"] for r in self.revocations()]

    def document(self) -> dict[str, Any]:
        with self._lock:
            live = {email: count for email, count in sorted(self._sessions.items()) if count}
        return {"sessions": live, "revocations": self.revocations()}

    def handle(self, method: str, query: dict[str, list[str]], body: bytes, token: str) -> Reply:
        if method != "POST":
            return no_route()
        if token in self.denied:
            return authentication_error()
        fields = _validated(query, body)
        if isinstance(fields, Reply):
            return fields
        with self._lock:
            key = fields["email"].lower()
            ended = self._sessions.pop(key, 0)
            self._revocations.append({"at": self.clock(), "ended": ended, **fields})
        return success(200, b"true")


def _validated(query: dict[str, list[str]], body: bytes) -> dict[str, Any] | Reply:
    """The request's fields, or the 400 Access answers a body it refuses with."""
    document = json_object(body)
    if not isinstance(document, dict):
        return document
    email = document.get("email")
    if not isinstance(email, str) or not email.strip():
        return invalid_request("/email")
    fields: dict[str, Any] = {"email": email}
    for flag in OPTIONAL_FLAGS:
        value = document.get(flag)
        if value is not None and not isinstance(value, bool):
            return invalid_request(f"/{flag}")
        fields[flag] = bool(value)
    user_uid = document.get("user_uid")
    if user_uid is not None and not isinstance(user_uid, str):
        return invalid_request("/user_uid")
    devices = query.get("devices")
    if devices is not None:
        if devices[-1] not in ("true", "false"):
            return invalid_request()
        fields["devices"] = fields["devices"] or devices[-1] == "true"
    return fields
