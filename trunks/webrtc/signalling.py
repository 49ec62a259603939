"""The WebRTC signalling socket: ``GET /webrtc/1/signalling?token=...`` upgraded to a
WebSocket on the gateway's HTTP server, carrying the JSON messages of
``docs/webrtc-signalling.md``.

A socket is registered under its token's identity until it closes; several sockets of one
identity (tabs) all ring for a call to it. What a message means for a call is the adapter's
business: this module authenticates, keeps the registry, parses and sends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, WebSocket

from gateway.timeutil import format_time
from trunks.webrtc.tokens import Grant, TokenIssuer

log = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's own, RFC 6455 §7.4.2).
CLOSE_UNAUTHORIZED = 4401  # no token, a forged or malformed one, or an expired one
CLOSE_SHUTDOWN = 1001  # the gateway is going away
MAX_MESSAGE = 64 * 1024  # an SDP with many candidates stays well below
TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"]*")


class RedactTokens(logging.Filter):
    """uvicorn logs each accepted socket's path with its query (``?token=...``) at INFO,
    access log or not: the token is cut out before the record is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                TOKEN_IN_URL.sub(r"\1<redacted>", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


REDACT_TOKENS = RedactTokens()


class Socket:
    """One connected client: its grant and a way to send it messages."""

    def __init__(self, websocket: WebSocket, grant: Grant) -> None:
        self.websocket = websocket
        self.grant = grant
        self.closed = False

    @property
    def identity(self) -> str:
        return self.grant.identity

    async def send(self, message: dict[str, Any]) -> bool:
        """Send one message; False when the socket has gone (the caller need not care why)."""
        if self.closed:
            return False
        try:
            await self.websocket.send_text(json.dumps(message))
        except Exception:  # a socket closing under us: its close handler follows
            self.closed = True
            return False
        return True

    async def close(self, code: int = CLOSE_SHUTDOWN, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.websocket.close(code, reason)


MessageHandler = Callable[[Socket, dict[str, Any]], Awaitable[None]]
CloseHandler = Callable[[Socket], Awaitable[None]]


class Signalling:
    """The registry of connected sockets by identity, and their message loops."""

    def __init__(self, tokens: TokenIssuer) -> None:
        self.tokens = tokens
        logging.getLogger("uvicorn.error").addFilter(REDACT_TOKENS)  # added once, by identity
        self.on_message: MessageHandler | None = None
        self.on_close: CloseHandler | None = None
        self._sockets: dict[str, list[Socket]] = {}

    def sockets(self, identity: str) -> list[Socket]:
        return list(self._sockets.get(identity, ()))

    @property
    def socket_count(self) -> int:
        return sum(len(s) for s in self._sockets.values())

    async def serve(self, websocket: WebSocket) -> None:
        """One socket's life: authenticate, register, dispatch messages until it closes."""
        grant = self.tokens.verify(websocket.query_params.get("token"))
        await websocket.accept()
        if grant is None:
            # Accepted first so that the client sees the code and reason (a refused upgrade
            # is only an HTTP 403 to a browser's WebSocket).
            await websocket.close(CLOSE_UNAUTHORIZED, "invalid or expired token")
            return
        socket = Socket(websocket, grant)
        self._sockets.setdefault(grant.identity, []).append(socket)
        try:
            expires = datetime.fromtimestamp(grant.expires, UTC)
            await socket.send(
                {
                    "type": "registered",
                    "identity": grant.identity,
                    "displayName": grant.display_name,
                    "expirationTime": format_time(expires),
                }
            )
            await self._loop(socket)
        finally:
            socket.closed = True
            peers = self._sockets.get(grant.identity, [])
            if socket in peers:
                peers.remove(socket)
            if not peers:
                self._sockets.pop(grant.identity, None)
            if self.on_close is not None:
                await self.on_close(socket)

    async def _loop(self, socket: Socket) -> None:
        while True:
            try:
                received = await socket.websocket.receive()
            except RuntimeError:  # the socket is gone already
                return
            if received["type"] == "websocket.disconnect":
                return
            text = received.get("text")
            message = parse(text) if isinstance(text, str) else None  # a binary frame: refused
            if message is None:
                await socket.send({"type": "error", "reason": "not a JSON object with a type"})
                continue
            if self.on_message is not None:
                try:
                    await self.on_message(socket, message)
                except Exception:
                    log.exception("webrtc: handling %s failed", message.get("type"))
                    await socket.send(
                        {"type": "error", "ref": message.get("ref"), "reason": "internal error"}
                    )

    async def close(self) -> None:
        for sockets in list(self._sockets.values()):
            for socket in list(sockets):
                await socket.close(CLOSE_SHUTDOWN, "gateway stopping")


def parse(text: str) -> dict[str, Any] | None:
    """A message is a JSON object with a string ``type``; anything else is refused."""
    if len(text) > MAX_MESSAGE:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return None
    return message


router = APIRouter()


@router.websocket("/webrtc/1/signalling")
async def signalling_socket(websocket: WebSocket) -> None:
    """Authenticated by its own token (``?token=``), not the API key: browsers connect here."""
    await websocket.app.state.gateway.webrtc_signalling.serve(websocket)
