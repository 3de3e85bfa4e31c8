"""The HTTP API (FastAPI, DESIGN.md §9): /metrics, /healthz, /readyz and /api/v1/…

Routers of other areas (alerts, silences, actions, pings, the Alertmanager webhook) are included from
their own modules; each reads the runtime from ``request.app.state.rt``.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from agent import __version__
from agent.auth import admin_read, check_token
from agent.exporter import CONTENT_TYPE


def build_app(rt) -> FastAPI:
    """The ASGI app over a Runtime `rt` (anything with config, store, exporter, ready)."""
    app = FastAPI(title="Caretaker", version=__version__, docs_url=None, redoc_url=None)
    token = rt.config.agent.admin_token
    app.state.admin_token = token.get_secret_value() if token else None
    app.state.rt = rt

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        if rt.config.agent.metrics_require_token:
            check_token(request, mutating=False)
        return Response(rt.exporter.body(), media_type=CONTENT_TYPE)

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    @app.get("/readyz")
    def readyz() -> Response:
        if rt.ready:
            return PlainTextResponse("ready")
        return PlainTextResponse("waiting for the first probe round", status_code=503)

    @app.get("/api/v1/status", dependencies=[Depends(admin_read)])
    def status() -> JSONResponse:
        return JSONResponse({"version": __version__, "probes": [asdict(s) for s in rt.store.statuses()]})

    for router in rt.routers:
        app.include_router(router)
    return app
