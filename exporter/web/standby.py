"""What ``serve --standby`` answers while another replica holds the Vault (README, "High
availability"): alive (``/healthz`` 200), not ready (``/readyz`` 503 naming the holder and the
expiry of its lease), ``/metrics`` with ``vault_drift_leader 0`` and no audience series, and
503 naming the leader for the API and the page, which only the leader serves."""

from __future__ import annotations

import html

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from exporter import __version__
from exporter.metrics import StandbyExposition
from exporter.web.deps import error_response

RETRY_AFTER = "5"  # a standby reads the lease every 5 s


class StandbyState:
    """Who holds the Vault, as the standby last read it."""

    def __init__(self, reason: str = "standby: reading the lease") -> None:
        self.reason = reason  # "standby: lease held by <holder> until <time>"


def create_standby_app(state: StandbyState, exposition: StandbyExposition) -> FastAPI:
    app = FastAPI(title="vault-drift (standby)", version=__version__, docs_url=None, redoc_url=None)
    app.openapi_url = None

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        body, content_type = exposition.render(request.headers.get("accept", ""))
        return Response(body, media_type=content_type, headers={"Vary": "Accept"})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response:
        return _busy(error_response(503, "not ready", state.reason))

    @app.api_route("/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
    def elsewhere(path: str) -> Response:
        """The API and the page: the leader's."""
        if path == "iam" or path.startswith("iam/"):
            return _busy(error_response(503, "standby", f"{state.reason}: ask the leader"))
        text = html.escape(state.reason)
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>vault-drift: standby</title>"
            f"<h1>This replica is a standby</h1><p>{text}.</p>"
            "<p>The leader serves the page; this one takes over if the leader stops.</p></html>"
        )
        return _busy(HTMLResponse(page, status_code=503))

    return app


def _busy(response: Response) -> Response:
    response.headers["Retry-After"] = RETRY_AFTER
    return response
