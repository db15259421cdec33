"""Bearer tokens: the admin token for everything under /iam, the read token for GETs only."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import Enum

from pydantic import SecretStr


class Role(Enum):
    ADMIN = "admin"
    READ = "read"


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Tokens:
    admin: SecretStr | None
    read: SecretStr | None

    def __repr__(self) -> str:
        return "Tokens(<redacted>)"

    def role_of(self, presented: str | None) -> Role | None:
        """The role a presented token grants, compared in constant time."""
        if not presented:
            return None
        matched = None
        for role, secret in ((Role.ADMIN, self.admin), (Role.READ, self.read)):
            if secret is not None and hmac.compare_digest(
                presented.encode(), secret.get_secret_value().encode()
            ):
                matched = role
        return matched

    def authorize(self, presented: str | None, mutating: bool) -> Role:
        if self.admin is None:
            raise AuthError(403, "the API is disabled: VAULT_DRIFT_ADMIN_TOKEN is not set")
        role = self.role_of(presented)
        if role is None:
            raise AuthError(401, "missing or invalid bearer token")
        return self.authorize_role(role, mutating)

    def authorize_role(self, role: Role, mutating: bool) -> Role:
        """A role already established (the page's session) against the action asked."""
        if self.admin is None:
            raise AuthError(403, "the API is disabled: VAULT_DRIFT_ADMIN_TOKEN is not set")
        if mutating and role is not Role.ADMIN:
            raise AuthError(403, "the read token cannot change anything")
        return role


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
