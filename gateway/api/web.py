"""The browser softphone's static files: ``GET /webrtc/phone`` and ``/webrtc/static/<name>``.

Unauthenticated on purpose: they hold no secrets (a page signs in with a token or the API key
typed into it), and a browser must load them before it can authenticate anything.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.api.errors import ApiError

MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
}
# The page runs only its own files and talks only to its own origin (REST and the socket).
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:;"
        " frame-ancestors 'none'"
    ),
}
WEB = files("gateway.web")
SERVED = {f.name for f in WEB.iterdir() if f.name.rpartition(".")[2] in MEDIA_TYPES}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> Response:
    if name not in SERVED:
        raise ApiError(404, f"no such file: {name}")
    body = WEB.joinpath(name).read_bytes()
    return Response(body, media_type=MEDIA_TYPES[name.rpartition(".")[2]], headers=HEADERS)


@router.get("/webrtc/phone")
async def softphone() -> Response:
    return _file("softphone.html")


@router.get("/webrtc/static/{name}")
async def static_file(name: str) -> Response:
    return _file(name)
