"""The HTTP application: every route authenticated but ``/health``; errors in the API's shape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

from gateway import __version__
from gateway.api import calls, configurations, errors, numbers, subscriptions
from gateway.api.auth import ApiKeyAuth


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

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"status": "UP", "version": __version__, "liveCalls": gateway.calls.live_count}

    protected = [Depends(auth)]
    for router in (
        configurations.router,
        calls.router,
        subscriptions.router,
        numbers.router,
        *extra_routers,
    ):
        app.include_router(router, dependencies=protected)
    return app
