"""What the services report to the exporter's own metrics (checks and syncs run)."""

from __future__ import annotations

from typing import Protocol


class Events(Protocol):
    def checked(self, scope: str, success: bool, seconds: float) -> None: ...
    # One phase of a check: ``vault`` (reading the Vault: on D1, its requests), ``cloudflare``
    # (the listing or the direct GETs), ``record`` (evaluating and persisting the results).
    def phase(self, scope: str, phase: str, seconds: float) -> None: ...
    def synced(self, trigger: str, result: str, blocked_reason: str | None) -> None: ...


class NoEvents:
    def checked(self, scope: str, success: bool, seconds: float) -> None:
        pass

    def phase(self, scope: str, phase: str, seconds: float) -> None:
        pass

    def synced(self, trigger: str, result: str, blocked_reason: str | None) -> None:
        pass
