"""``create_app``: the ASGI application, built from the collaborators it is given."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from exporter import __version__
from exporter.service.work_lock import Busy
from exporter.vault.store import VaultError
from exporter.web.api import router as api_router
from exporter.web.api_exemptions import router as exemptions_router
from exporter.web.auth import AuthError
from exporter.web.deps import ApiError, WebServices, error_response
from exporter.web.logpush import router as logpush_router
from exporter.web.page import router as page_router
from exporter.web.page_exemptions import router as page_exemptions_router
from exporter.web.page_forms import router as forms_router


def create_app(services: WebServices, page: bool = True) -> FastAPI:
    app = FastAPI(
        title="vault-drift",
        version=__version__,
        description="Drift between TPB Vault memberships and Cloudflare Access groups.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    _install_error_handlers(app)
    _install_operational_routes(app, services)
    app.include_router(logpush_router)
    app.include_router(exemptions_router)  # before the API's GET /iam/drift/{audience}
    app.include_router(api_router)
    if page:
        app.include_router(page_router)
        app.include_router(forms_router)
        app.include_router(page_exemptions_router)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail)

    @app.exception_handler(AuthError)
    async def _auth_error(_: Request, exc: AuthError) -> JSONResponse:
        return error_response(exc.status, exc.message)

    @app.exception_handler(VaultError)
    async def _vault_unavailable(_: Request, exc: VaultError) -> JSONResponse:
        # Every endpoint that needs the Vault: the file locked or damaged, D1 refusing.
        return error_response(503, "vault unavailable", str(exc))

    @app.exception_handler(Busy)
    async def _busy(_: Request, exc: Busy) -> JSONResponse:
        return error_response(409, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", "")}
            for err in exc.errors()
        ]
        return error_response(422, "invalid request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))


def _install_operational_routes(app: FastAPI, services: WebServices) -> None:
    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={
            200: {
                "description": "OpenMetrics 1.0.0 when the Accept header asks for it (as "
                "Prometheus does), else the Prometheus text format 0.0.4",
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                },
            }
        },
    )
    def metrics(request: Request) -> Response:
        """Prometheus exposition, from the last background check (never calls Cloudflare)."""
        body, content_type = services.exposition.render(request.headers.get("accept", ""))
        return Response(body, media_type=content_type, headers={"Vary": "Accept"})

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """200 while the process runs."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "no successful check cycle recently"}},
    )
    def readyz() -> Response:
        """200 when the last check cycle succeeded within two intervals."""
        reason = not_ready_reason(services)
        if reason:
            return error_response(503, "not ready", reason)
        return JSONResponse({"status": "ready"})


def not_ready_reason(services: WebServices) -> str | None:
    snapshot = services.snapshots.current
    if snapshot.last_success_at is None:
        return snapshot.cycle_error or "no successful check cycle yet"
    age = (services.clock() - snapshot.last_success_at).total_seconds()
    limit = 2 * services.full_interval_seconds()
    if age > limit:
        why = f": {snapshot.cycle_error}" if snapshot.cycle_error else ""
        return f"last successful check cycle {int(age)}s ago (limit {limit}s){why}"
    return None
