"""The operator page's login session (signed cookie) and CSRF check.

Until the page lands, no session is ever valid: the API accepts bearer tokens only.
"""

from __future__ import annotations

from fastapi import Request

from .auth import Role


def session_role(request: Request, mutating: bool) -> Role | None:
    return None
