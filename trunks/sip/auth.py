"""Who may use the SIP side: digest challenges for registrations and calls, with failures
throttled per source so that a scanner learns nothing and gets nowhere.

Every failure is answered alike (a fresh challenge, or 403 once a source is blocked): an unknown
user and a wrong password look the same from outside.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from trunks.sip.digest import Credential, DigestServer
from trunks.sip.message import SipRequest
from trunks.sip.throttle import AuthThrottle
from trunks.sip.transaction import ServerTransaction, response_to

log = logging.getLogger(__name__)


class SipAuthenticator:
    def __init__(
        self,
        digest: DigestServer,
        throttle: AuthThrottle,
        credentials: Callable[[str], Credential | None],
    ) -> None:
        self._digest = digest
        self._throttle = throttle
        self._credentials = credentials

    def __call__(self, request: SipRequest, transaction: ServerTransaction) -> str | None:
        """REGISTER: 401 with WWW-Authenticate. Others: 407 with Proxy-Authenticate."""
        return self.authenticate(request, transaction, proxy=request.method != "REGISTER")

    def authenticate(
        self, request: SipRequest, transaction: ServerTransaction, *, proxy: bool
    ) -> str | None:
        source = transaction.source.host
        if not self._throttle.allowed(source):
            transaction.reply(403, "Forbidden")
            return None
        header = "Proxy-Authorization" if proxy else "Authorization"
        if header not in request.headers:
            self._challenge(transaction, proxy, stale=False)
            return None
        result = self._digest.verify_request(request, self._credentials, proxy=proxy)
        if result.ok:
            self._throttle.success(source)
            return result.username
        if result.stale:
            self._challenge(transaction, proxy, stale=True)
            return None
        log.info("SIP auth failed from %s (%s): %s", source, request.method, result.reason)
        if self._throttle.failure(source, result.username):
            transaction.reply(403, "Forbidden")
        else:
            self._challenge(transaction, proxy, stale=False)
        return None

    def _challenge(self, transaction: ServerTransaction, proxy: bool, stale: bool) -> None:
        status, reason, header = (
            (407, "Proxy Authentication Required", "Proxy-Authenticate")
            if proxy
            else (401, "Unauthorized", "WWW-Authenticate")
        )
        response = response_to(transaction.request, status, reason, transaction.to_tag)
        for value in self._digest.challenge(stale=stale):
            response.headers.add(header, value)
        transaction.respond(response)
