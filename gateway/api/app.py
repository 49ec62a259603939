"""The HTTP application: every route authenticated but ``/health``; errors in the API's shape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import PlainTextResponse

from gateway import __version__
from gateway.api import (
    actions,
    calls,
    conferences,
    configurations,
    dialogs,
    errors,
    files,
    numbers,
    recordings,
    subscriptions,
)
from gateway.api.auth import ApiKeyAuth
from gateway.media.metrics import render_prometheus


def create_api(gateway: Any, auth: ApiKeyAuth, extra_routers: Iterable[APIRouter] = ()) -> FastAPI:
    """``gateway`` is the composition root's container; handlers reach it as app.state.gateway."""
    app = FastAPI(
        title="Voice gateway",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    app.state.gateway = gateway
    errors.install(app)

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(auth)])
    async def metrics() -> PlainTextResponse:
        """Per-leg RTP counters in the Prometheus text format."""
        return PlainTextResponse(
            render_prometheus(gateway.rtp_sessions), media_type="text/plain; version=0.0.4"
        )

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"status": "UP", "version": __version__, "liveCalls": gateway.calls.live_count}

    protected = [Depends(auth)]
    for router in (
        configurations.router,
        calls.router,
        actions.router,
        dialogs.router,
        conferences.router,
        recordings.router,
        files.router,
        subscriptions.router,
        numbers.router,
        *extra_routers,
    ):
        app.include_router(router, dependencies=protected)
    return app
