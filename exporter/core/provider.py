"""The seam between the services and an identity provider, in the domain's terms.

An audience's ``sys_infra_state.provider`` names where its group lives: Cloudflare Access
(``cloudflare_access``) or AWS IAM Identity Center (``aws_identity_center``). The checker,
the syncer and the cycle ask the same things of either (``Provider``); what one cannot do is
said by its ``Capabilities``, never guessed from its name. docs/aws.md describes the
interface and both providers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from exporter.core.model import Actual, Audience, SyncPlan

CLOUDFLARE_ACCESS = "cloudflare_access"
AWS_IDENTITY_CENTER = "aws_identity_center"
PROVIDERS = (CLOUDFLARE_ACCESS, AWS_IDENTITY_CENTER)

# ``sys_infra_state.provider_resource_type`` of the groups each provider creates.
RESOURCE_TYPES = {CLOUDFLARE_ACCESS: "access_group", AWS_IDENTITY_CENTER: "identitystore_group"}


class ProviderError(Exception):
    """A provider call that failed. Keeps the provider's status and error code, never a secret.

    ``not_found`` is true when the provider says the group does not exist (a check then
    reports the group as gone, a sync refuses).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | int | None = None,
        request: str | None = None,
        not_found: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.code = code
        self.request = request
        self.not_found = not_found


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do, so that the services never test a provider's name."""

    # Ends a removed member's sessions (Cloudflare's revoke_user); AWS has no such call.
    session_revocation: bool
    # An audit log says who changed a group (Cloudflare's account audit log).
    attribution: bool
    # Most rules one group may hold (Cloudflare: 1,000); None: no limit a sync must guard.
    member_limit: int | None
    # A member must already be a user of the provider (AWS: users come from SCIM; a sync
    # never creates one). False: any email address can be added (Cloudflare).
    accounts_required: bool


CAPABILITIES = {
    CLOUDFLARE_ACCESS: Capabilities(
        session_revocation=True,
        attribution=True,
        member_limit=1000,  # core.plan.RULE_LIMIT (plan imports this module)
        accounts_required=False,
    ),
    AWS_IDENTITY_CENTER: Capabilities(
        session_revocation=False, attribution=False, member_limit=None, accounts_required=True
    ),
}

# What an audience's document says its provider cannot do (docs/aws.md, "capabilities").
_LIMITS = {
    AWS_IDENTITY_CENTER: (
        "session revocation applies to Cloudflare Access only: removing a member from an AWS"
        " group ends no session already open; attribution (who changed the group) is not"
        " applicable to AWS"
    ),
}


def capabilities_document(provider: str) -> dict[str, Any] | None:
    """``provider_capabilities`` of an audience's document; None for an unknown provider."""
    found = CAPABILITIES.get(provider)
    if found is None:
        return None
    return {
        "session_revocation": found.session_revocation,
        "attribution": found.attribution,
        "note": _LIMITS.get(provider),
    }


@dataclass(frozen=True)
class ProviderStats:
    """A provider's request counters, for ``vault_drift_provider_*``."""

    requests: Mapping[tuple[str, str], int]  # (operation, status_class) -> count
    throttled_total: int
    paused_until_wall: float | None  # unix time while calls are paused, else None


@dataclass(frozen=True)
class Listing:
    """The actual members of many audiences, by audience; ``error`` says why the read as a
    whole failed (each audience's ``Actual`` then carries it too)."""

    actual: Mapping[str, Actual]
    error: str | None = None


@dataclass(frozen=True)
class SyncMode:
    add_only: bool = False
    remove_only: bool = False
    force: bool = False
    # Exempt members (docs/exemptions.md): ``keep`` are never removed, ``leave_out`` never
    # added; every provider plans through ``plan.plan_in``.
    keep: frozenset[str] = frozenset()
    leave_out: frozenset[str] = frozenset()


class Provider(Protocol):
    """One identity provider. Thread-safe; reads never write; writes change only the diff."""

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def actual_members(self, audiences: Sequence[Audience]) -> Listing:
        """The groups of these audiences (those with a group id), read as cheaply as the
        provider allows (Cloudflare: one paginated listing; AWS: users once, then each
        group's memberships). An audience whose group does not exist gets ``Actual()``."""
        ...

    def actual_of(self, audience: Audience) -> Actual:
        """One audience's group, read directly (a partial check)."""
        ...

    def plan(self, audience: Audience, expected: Collection[str], mode: SyncMode) -> SyncPlan:
        """The sync that makes the group match ``expected``, on a fresh read, guards applied.
        Raises ``ProviderError`` when the group cannot be read."""
        ...

    def apply(self, plan: SyncPlan) -> Actual:
        """Send the plan (only its diff) and return the group read back. Raises
        ``ProviderError`` on a failed write and ``VerificationFailed`` when the read-back
        differs from what the plan wants."""
        ...

    def create_group(self, name: str, emails: Collection[str]) -> tuple[str, Actual]:
        """A new group named after the audience with these members: its id and its read."""
        ...

    def applied(self, group_id: str, added: Collection[str], removed: Collection[str]) -> bool:
        """Whether the group now shows a sync's change (settling a sync a crash interrupted)."""
        ...

    def pause_left(self) -> float | None:
        """Seconds until calls go out again after throttling; None when they go out now."""
        ...

    def request_stats(self) -> ProviderStats:
        """The provider's request counters, for the metrics."""
        ...


class VerificationFailed(Exception):
    """The group read back after a sync differs from what was sent."""


def provider_title(provider: str) -> str:
    """A provider's product name, as the page heads it."""
    titles = {
        CLOUDFLARE_ACCESS: "Cloudflare Access",
        AWS_IDENTITY_CENTER: "AWS IAM Identity Center",
    }
    return titles.get(provider, provider)


def provider_word(provider: str) -> str:
    """How a provider is named in sentences ("in Cloudflare", "in AWS")."""
    return {CLOUDFLARE_ACCESS: "Cloudflare", AWS_IDENTITY_CENTER: "AWS"}.get(provider, provider)


def group_noun(provider: str) -> str:
    """How a provider's group is named in sentences ("Cloudflare group", "AWS group")."""
    return {CLOUDFLARE_ACCESS: "Cloudflare group", AWS_IDENTITY_CENTER: "AWS group"}.get(
        provider, f"{provider} group"
    )


__all__ = [
    "AWS_IDENTITY_CENTER",
    "CAPABILITIES",
    "CLOUDFLARE_ACCESS",
    "PROVIDERS",
    "RESOURCE_TYPES",
    "Capabilities",
    "Listing",
    "Provider",
    "ProviderError",
    "ProviderStats",
    "SyncMode",
    "VerificationFailed",
    "capabilities_document",
    "group_noun",
    "provider_title",
    "provider_word",
]
