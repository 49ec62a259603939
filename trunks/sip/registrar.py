"""The registrar and location service (RFC 3261 §10): who is reachable where.

An address-of-record is a registered trunk's username; its bindings are the Contact URIs its
REGISTERs named, each with an expiry, plus the transport and source address the REGISTER came
from, so that calls reach phones behind NAT through the flow they registered on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol

from trunks.sip.message import SipRequest
from trunks.sip.transaction import ServerTransaction, response_to
from trunks.sip.transport import Peer
from trunks.sip.uri import InvalidUri, NameAddr

DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
MAX_EXPIRES = 3600


@dataclass
class Binding:
    aor: str
    contact: NameAddr
    expires_at: float
    source: Peer
    call_id: str
    cseq: int

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now))


class Authenticator(Protocol):
    def __call__(self, request: SipRequest, transaction: ServerTransaction) -> str | None:
        """The authenticated username, or None once it has answered the request (401/403)."""
        ...


class LocationService:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._bindings: dict[str, list[Binding]] = {}

    def lookup(self, aor: str) -> list[Binding]:
        """Live bindings of ``aor``, the most recently registered first."""
        now = self._clock()
        live = [b for b in self._bindings.get(aor, []) if b.expires_at > now]
        if live:
            self._bindings[aor] = live
        else:
            self._bindings.pop(aor, None)
        return sorted(live, key=lambda b: b.expires_at, reverse=True)

    def replace(self, aor: str, bindings: list[Binding]) -> None:
        if bindings:
            self._bindings[aor] = bindings
        else:
            self._bindings.pop(aor, None)

    def registered(self) -> list[str]:
        return [aor for aor in list(self._bindings) if self.lookup(aor)]


class Registrar:
    def __init__(
        self,
        authenticate: Authenticator,
        location: LocationService,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._authenticate = authenticate
        self.location = location
        self._clock = clock

    def handle(self, request: SipRequest, transaction: ServerTransaction) -> None:
        username = self._authenticate(request, transaction)
        if username is None:
            return
        aor = request.to.uri.user or ""
        if aor != username:
            transaction.reply(403, "Forbidden")  # a trunk registers its own name only
            return
        try:
            contacts = request.contacts
        except InvalidUri:
            transaction.reply(400, "Bad Request", {"Warning": '399 gateway "bad Contact"'})
            return
        header_expires = request.headers.get("Expires")
        if header_expires is not None and not header_expires.isdigit():
            transaction.reply(400, "Bad Request", {"Warning": '399 gateway "bad Expires"'})
            return
        now = self._clock()
        current = self.location.lookup(aor)
        if any(c.wildcard for c in contacts):
            if len(contacts) != 1 or header_expires != "0":
                transaction.reply(400, "Bad Request", {"Warning": '399 gateway "bad wildcard"'})
                return
            self.location.replace(aor, [])
            self._ok(request, transaction, [])
            return
        call_id, cseq = request.call_id, request.cseq[0]
        updated = {str(b.contact.uri): b for b in current}
        for contact in contacts:
            expires_text = contact.params.get("expires") or header_expires
            if expires_text is not None and not expires_text.isdigit():
                transaction.reply(400, "Bad Request", {"Warning": '399 gateway "bad expires"'})
                return
            expires = DEFAULT_EXPIRES if expires_text is None else int(expires_text)
            key = str(contact.uri)
            earlier = updated.get(key)
            if earlier is not None and earlier.call_id == call_id and cseq <= earlier.cseq:
                transaction.reply(500, "Server Internal Error", {"Retry-After": "1"})
                return
            if expires == 0:
                updated.pop(key, None)
                continue
            if expires < MIN_EXPIRES:
                transaction.reply(423, "Interval Too Brief", {"Min-Expires": str(MIN_EXPIRES)})
                return
            bound = NameAddr(contact.uri, contact.display_name)
            updated[key] = Binding(
                aor, bound, now + min(expires, MAX_EXPIRES), transaction.source, call_id, cseq
            )
        bindings = list(updated.values())
        self.location.replace(aor, bindings)
        self._ok(request, transaction, bindings)

    def _ok(
        self, request: SipRequest, transaction: ServerTransaction, bindings: list[Binding]
    ) -> None:
        response = response_to(request, 200, "OK", transaction.to_tag)
        now = self._clock()
        for binding in bindings:
            response.headers.add(
                "Contact", f"<{binding.contact.uri}>;expires={binding.expires_in(now)}"
            )
        response.headers.add("Date", formatdate(usegmt=True))
        transaction.respond(response)
