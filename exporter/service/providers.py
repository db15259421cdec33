"""Which provider serves an audience: its ``sys_infra_state.provider``, and nothing else.

An audience whose provider is not wired in this process (AWS without
``VAULT_DRIFT_AWS_IDENTITY_STORE_ID``) or that nobody knows (a typo, a provider of the
future) has no provider: its check is ``error`` with the reason, and nothing is read from or
written to any provider for it. Never Cloudflare's by default.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from exporter.core.model import Actual, Audience
from exporter.core.provider import (
    AWS_IDENTITY_CENTER,
    PROVIDERS,
    Listing,
    Provider,
    ProviderStats,
)

AWS_NOT_CONFIGURED = (
    "AWS IAM Identity Center is not configured: set VAULT_DRIFT_AWS_IDENTITY_STORE_ID"
    ' (README, "AWS IAM Identity Center")'
)


class NoProvider(LookupError):
    """The audience's provider is unknown or not configured; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Providers:
    """The providers of this process by name, and why the others are missing."""

    def __init__(
        self, available: Mapping[str, Provider], unavailable: Mapping[str, str] | None = None
    ) -> None:
        self._available = dict(available)
        self._unavailable = {AWS_IDENTITY_CENTER: AWS_NOT_CONFIGURED, **(unavailable or {})}

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._available.values())

    def get(self, name: str) -> Provider | None:
        return self._available.get(name)

    def why_not(self, name: str) -> str | None:
        """Why audiences of provider ``name`` cannot be served (None: they can)."""
        if name in self._available:
            return None
        if name in self._unavailable:
            return self._unavailable[name]
        known = ", ".join(PROVIDERS)
        return f"unknown provider {name} in sys_infra_state (known: {known})"

    def of(self, audience: Audience) -> Provider:
        """The audience's provider; ``NoProvider`` with the reason when there is none."""
        provider = self._available.get(audience.provider)
        if provider is None:
            raise NoProvider(self.why_not(audience.provider) or audience.provider)
        return provider

    def split(
        self, audiences: Sequence[Audience]
    ) -> tuple[dict[str, list[Audience]], dict[str, str]]:
        """(audiences by provider name, reason by audience for those without a provider)."""
        served: dict[str, list[Audience]] = {}
        refused: dict[str, str] = {}
        for audience in audiences:
            reason = self.why_not(audience.provider)
            if reason is None:
                served.setdefault(audience.provider, []).append(audience)
            else:
                refused[audience.audience] = reason
        return served, refused

    def request_stats(self) -> dict[str, ProviderStats]:
        """Each provider's request counters, by provider name (for the metrics)."""
        return {name: provider.request_stats() for name, provider in self._available.items()}

    def paused(self, name: str) -> bool:
        """Whether the provider's calls are paused by throttling right now."""
        provider = self._available.get(name)
        return provider is not None and provider.pause_left() is not None


def merged(listings: Mapping[str, Listing], refused: Mapping[str, str]) -> Mapping[str, Actual]:
    """One audience -> actual mapping over every provider's read (each kept as it came:
    Cloudflare's packed), plus an error for each audience without a provider."""
    if not refused and len(listings) == 1:
        return next(iter(listings.values())).actual
    merged: dict[str, Actual] = {name: Actual(error=reason) for name, reason in refused.items()}
    parts = [listing.actual for listing in listings.values()]
    return _Chained(merged, parts)


class _Chained(Mapping[str, Actual]):
    """Several mappings read as one, without unpacking any value until it is asked for."""

    def __init__(self, first: Mapping[str, Actual], rest: list[Mapping[str, Actual]]) -> None:
        self._parts = [first, *rest]

    def __getitem__(self, key: str) -> Actual:
        for part in self._parts:
            if key in part:
                return part[key]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return any(key in part for part in self._parts)

    def __iter__(self) -> Iterator[str]:
        return (key for part in self._parts for key in part)

    def __len__(self) -> int:
        return sum(len(part) for part in self._parts)


__all__ = ["AWS_NOT_CONFIGURED", "NoProvider", "Providers", "merged"]
