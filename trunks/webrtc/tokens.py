"""Short-lived WebRTC tokens, each bound to one identity, and the REST call that issues them.

Shaped like the cloud's WebRTC token API (``POST /webrtc/1/token``; the Calls API openapi in
``shared/reference`` does not describe it): ``identity`` (required), ``displayName``,
``applicationId`` (here: the calls configuration that the identity's own calls reach) and
``timeToLive`` in seconds; the answer is ``{token, expirationTime}``.

Tokens are stateless: the grant as JSON, base64url, then an HMAC-SHA256 under a key derived
from the API key. They survive a restart, and rotating the API key revokes them all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.errors import ApiError
from gateway.timeutil import format_time

IDENTITY = re.compile(r"^[A-Za-z0-9_\-+=/.@]{3,64}$")


@dataclass(frozen=True)
class Grant:
    """What a valid token says: who may connect, as what name, to which application."""

    identity: str
    display_name: str | None
    application_id: str | None
    expires: float  # seconds since the epoch


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    def __init__(self, api_key: str, default_ttl: int, max_ttl: int) -> None:
        self._key = hmac.new(api_key.encode(), b"webrtc-token", hashlib.sha256).digest()
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl

    def issue(
        self,
        identity: str,
        display_name: str | None = None,
        application_id: str | None = None,
        ttl: int | None = None,
    ) -> tuple[str, Grant]:
        grant = Grant(
            identity, display_name, application_id, time.time() + (ttl or self.default_ttl)
        )
        body = {"i": identity, "d": display_name, "a": application_id, "e": grant.expires}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}", grant

    def verify(self, token: str | None) -> Grant | None:
        """The token's grant, or None when it is missing, forged, malformed or expired."""
        if not token or token.count(".") != 1:
            return None
        payload, signature = token.split(".")
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            body = json.loads(_unb64(payload))
            grant = Grant(str(body["i"]), body.get("d"), body.get("a"), float(body["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return grant if grant.expires > time.time() else None

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the cloud's capabilities{} and the like
    identity: str
    displayName: Annotated[str | None, Field(max_length=150)] = None
    applicationId: Annotated[str | None, Field(max_length=255)] = None
    timeToLive: Annotated[int | None, Field(ge=1)] = None


router = APIRouter(prefix="/webrtc/1", tags=["webrtc"])


@router.post("/token")
async def create_token(body: TokenRequest, request: Request) -> dict[str, Any]:
    """A token for one identity; the API key authenticates this route (the app's backend)."""
    gateway = request.app.state.gateway
    issuer: TokenIssuer = gateway.webrtc_tokens
    problems: dict[str, list[str]] = {}
    if not IDENTITY.match(body.identity):
        problems["identity"] = ["must be 3 to 64 characters of A-Z a-z 0-9 _ - + = / . @"]
    if body.timeToLive is not None and body.timeToLive > issuer.max_ttl:
        problems["timeToLive"] = [f"must be at most {issuer.max_ttl} seconds"]
    if body.applicationId and not gateway.configurations.exists(body.applicationId):
        problems["applicationId"] = [f"calls configuration {body.applicationId!r} does not exist"]
    if problems:
        raise ApiError(400, "Bad request", problems)
    token, grant = issuer.issue(
        body.identity, body.displayName, body.applicationId, body.timeToLive
    )
    expires = datetime.fromtimestamp(grant.expires, UTC)
    return {"token": token, "expirationTime": format_time(expires)}
