"""API authentication: ``Authorization: App <key>`` or ``Basic`` with the key as password.

Keys are compared in constant time; a failure says nothing about which part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import Request

from gateway.api.errors import ApiError


class ApiKeyAuth:
    def __init__(self, api_key: str, username: str) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        self._key = api_key.encode()
        self._username = username.encode()

    def check(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "app":
            return hmac.compare_digest(credentials.encode(), self._key)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return False
            user, _, password = decoded.partition(b":")
            user_ok = hmac.compare_digest(user, self._username)
            return hmac.compare_digest(password, self._key) and user_ok
        return False

    async def __call__(self, request: Request) -> None:
        if not self.check(request.headers.get("authorization")):
            raise ApiError(401, "Unauthorized: send 'Authorization: App <api key>'.")
