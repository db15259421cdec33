"""The operator page's login session: a signed, expiring cookie holding a role and a CSRF token.

The cookie never holds a token: only the role the token granted at login, signed with
``Services.session_secret`` (itsdangerous), so a forged or edited cookie is no session.
Mutating calls made with the cookie must also carry the session's CSRF token in the
``X-CSRF-Token`` header (forms post it as the ``csrf`` field).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from exporter.web.auth import AuthError, Role

COOKIE = "vault_drift_session"
LOGIN_COOKIE = "vault_drift_login"  # the login form's own CSRF (double submit)
MAX_AGE_SECONDS = 12 * 3600
CSRF_HEADER = "x-csrf-token"
_SALT = "vault-drift-session"
# Without a configured secret, sessions are signed with one that lives as long as the process.
_PROCESS_SECRET = secrets.token_urlsafe(32)


MAX_USER = 100


@dataclass(frozen=True)
class Session:
    role: Role
    csrf: str
    user: str = ""  # the name given at login (optional): the owner of what the page makes


def user_name(typed: str) -> str:
    """A name as given at login, kept printable and short (it is shown and audited)."""
    return "".join(c for c in typed if c.isprintable()).strip()[:MAX_USER]


def _serializer(request: Request) -> URLSafeTimedSerializer:
    secret = getattr(request.app.state.services, "session_secret", "") or _PROCESS_SECRET
    return URLSafeTimedSerializer(secret, salt=_SALT)


def issue_session(request: Request, role: Role, user: str = "") -> tuple[str, Session]:
    """A new session for ``role``: the signed cookie value and the session it encodes."""
    session = Session(role, secrets.token_urlsafe(32), user_name(user))
    data = {"role": role.value, "csrf": session.csrf}
    if session.user:
        data["user"] = session.user
    return _serializer(request).dumps(data), session


def read_session(request: Request) -> Session | None:
    """The session of a valid, unexpired cookie; None otherwise."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        data = _serializer(request).loads(value, max_age=MAX_AGE_SECONDS)
        return Session(Role(data["role"]), str(data["csrf"]), user_name(str(data.get("user", ""))))
    except (BadSignature, KeyError, TypeError, ValueError):
        return None


def csrf_matches(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(str(presented).encode(), session.csrf.encode())


def session_role(request: Request, mutating: bool) -> Role | None:
    """The role of the request's session; for a mutating call, only with its CSRF token."""
    session = read_session(request)
    if session is None:
        return None
    if mutating and not csrf_matches(session, request.headers.get(CSRF_HEADER)):
        raise AuthError(403, "missing or invalid CSRF token")
    return session.role
