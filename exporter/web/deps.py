"""What every handler is given: the services, the exposition, the tokens; errors and roles.

The API, the page and ``create_app`` all import from here, so none imports another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from exporter.clock import Clock, utc_now
from exporter.metrics import Exposition
from exporter.service import Services
from exporter.service.cycle import CycleService
from exporter.service.decisions import Decisions
from exporter.service.exemptions import ExemptionService
from exporter.service.feed import ChangeFeed
from exporter.service.snapshots import SnapshotStore
from exporter.web.auth import Role, Tokens, bearer
from exporter.web.session import session_role


@dataclass(frozen=True)
class WebServices:
    snapshots: SnapshotStore
    cycle: CycleService
    decisions: Decisions
    exposition: Exposition
    tokens: Tokens
    clock: Clock = utc_now
    public_url: str = ""
    session_secret: str = ""
    feed: ChangeFeed | None = None
    logpush_token: str | None = None  # VAULT_DRIFT_LOGPUSH_TOKEN: unset, the endpoint is off

    def full_interval_seconds(self) -> int:
        """Seconds between full listings now (the change feed's safety net while healthy)."""
        if self.feed is not None:
            return self.feed.full_interval_seconds()
        return self.snapshots.current.settings.check_interval_seconds

    @property
    def exemptions(self) -> ExemptionService:
        """Exemptions are made through the same store, snapshots, cycle and clock."""
        return ExemptionService(self.decisions.vault, self.snapshots, self.cycle, clock=self.clock)

    @classmethod
    def around(
        cls, services: Services, exposition: Exposition, tokens: Tokens, **options: Any
    ) -> WebServices:
        options.setdefault("feed", services.feed)
        return cls(
            services.snapshots,
            services.cycle,
            services.decisions,
            exposition,
            tokens,
            **options,
        )


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


def error_response(status: int, error: str, detail: Any = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def services(request: Request) -> WebServices:
    svc: WebServices = request.app.state.services
    return svc


def reader(request: Request) -> Role:
    """Any valid token (the page's session counts too)."""
    return _role(request, mutating=False)


def admin(request: Request) -> Role:
    return _role(request, mutating=True)


def _role(request: Request, mutating: bool) -> Role:
    tokens = services(request).tokens
    presented = bearer(request.headers.get("authorization"))
    if presented is None:
        role = session_role(request, mutating)
        if role is not None:
            return tokens.authorize_role(role, mutating)
    return tokens.authorize(presented, mutating)


Svc = Annotated[WebServices, Depends(services)]
Reader = Annotated[Role, Depends(reader)]
Admin = Annotated[Role, Depends(admin)]
