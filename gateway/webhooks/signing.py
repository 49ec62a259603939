"""Headers that let a receiver trust and de-duplicate a webhook request.

Infobip does not document how it signs webhooks, so the gateway uses its own, GitHub-style
scheme: ``X-Gateway-Signature: sha256=<hex HMAC of the exact body bytes>`` with the profile's
HMAC secret, and ``X-Gateway-Event-Id``, the outbox row id, unchanged across retries.
BASIC security sends ``Authorization: Basic``. Receivers can use ``verify_signature``.
"""

from __future__ import annotations

import base64
import hmac

import httpx

from gateway.store.subscriptions import BASIC, HMAC, Profile, Security

SIGNATURE_HEADER = "X-Gateway-Signature"
EVENT_ID_HEADER = "X-Gateway-Event-Id"

# Subscriptions API ``HmacAlgorithm`` → hashlib name, which is also the signature's prefix.
HMAC_ALGORITHMS = {
    "HMAC_MD5": "md5",
    "HMAC_SHA_1": "sha1",
    "HMAC_SHA_224": "sha224",
    "HMAC_SHA_256": "sha256",
    "HMAC_SHA_384": "sha384",
    "HMAC_SHA_512": "sha512",
}
DEFAULT_HMAC_ALGORITHM = "HMAC_SHA_256"
_ALGORITHM_OF_PREFIX = {name: algorithm for algorithm, name in HMAC_ALGORITHMS.items()}


def signature(body: bytes, secret: str, algorithm: str = DEFAULT_HMAC_ALGORITHM) -> str:
    """The ``X-Gateway-Signature`` value: ``<hashlib name>=<hex digest>``."""
    name = HMAC_ALGORITHMS[algorithm]
    return f"{name}={hmac.new(secret.encode(), body, name).hexdigest()}"


def verify_signature(body: bytes, secret: str, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant-time compare)."""
    algorithm = _ALGORITHM_OF_PREFIX.get(header.partition("=")[0])
    return algorithm is not None and hmac.compare_digest(signature(body, secret, algorithm), header)


def basic_authorization(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def request_headers(
    event_id: int, body: bytes, profile: Profile | None, security: Security | None
) -> httpx.Headers:
    """The profile's own headers, then ours; security's ``Authorization`` replaces the profile's."""
    headers = httpx.Headers(profile.headers if profile else {})
    headers["Content-Type"] = "application/json"
    headers[EVENT_ID_HEADER] = str(event_id)
    if security is not None and security.type == BASIC:
        credentials = security.credentials
        headers["Authorization"] = basic_authorization(
            credentials["username"], credentials["password"]
        )
    elif security is not None and security.type == HMAC:
        credentials = security.credentials
        headers[SIGNATURE_HEADER] = signature(
            body, credentials["secretKey"], credentials.get("algorithm", DEFAULT_HMAC_ALGORITHM)
        )
    return headers
