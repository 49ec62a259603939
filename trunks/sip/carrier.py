"""The upstream carrier: PHONE numbers that the simulated PSTN does not have leave through it,
calls from it to our numbers come in as PHONE calls, and the gateway keeps a registration with
it when it asks for one (register, refresh before expiry, retry after failure).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from gateway.core.leg import Leg
from gateway.core.numbering import E164
from trunks.sip.dialog import peer_for
from trunks.sip.digest import DigestClient, DigestError
from trunks.sip.endpoint import SipEndpoint
from trunks.sip.message import SipResponse
from trunks.sip.transport import Peer
from trunks.sip.uri import SipUri

if TYPE_CHECKING:
    from gateway.core.errors import ErrorCode
    from gateway.media.port import NativeMedia
    from trunks.sip.adapter import SipTrunkAdapter
    from trunks.sip.media import RtpMediaPort

log = logging.getLogger(__name__)

RETRY_FIRST = 5.0
RETRY_MAX = 300.0


@dataclass(frozen=True)
class Carrier:
    """Where the carrier is (``sip:host:port;transport=...``) and how we log in to it."""

    uri: SipUri
    username: str = ""
    password: str = ""
    domain: str = ""

    @property
    def peer(self) -> Peer:
        return peer_for(self.uri)

    def target(self, number: str) -> tuple[SipUri, Peer]:
        uri = SipUri(
            self.uri.scheme, self.uri.host, number, port=self.uri.port, params=dict(self.uri.params)
        )
        return uri, self.peer

    def credentials(self) -> DigestClient | None:
        return DigestClient(self.username, self.password) if self.username else None

    def is_source(self, host: str) -> bool:
        return host == self.peer.host

    @property
    def aor(self) -> str:
        return f"sip:{self.username}@{self.domain or self.uri.host}"


class RegistrationState(StrEnum):
    UNREGISTERED = "UNREGISTERED"
    REGISTERED = "REGISTERED"
    FAILED = "FAILED"


class UpstreamRegistration:
    """Keeps one registration with the carrier alive: REGISTER, answer its challenge, refresh
    at 80 % of the granted expiry, and after a failure retry with a doubling delay."""

    def __init__(self, endpoint: SipEndpoint, carrier: Carrier, expires: int = 300) -> None:
        self._endpoint = endpoint
        self._carrier = carrier
        self._expires = expires
        self._call_id = ""
        self._tag = secrets.token_hex(6)
        self._cseq = 0
        self._task: asyncio.Task[None] | None = None
        self.state = RegistrationState.UNREGISTERED
        self.granted = 0

    def start(self) -> None:
        self._call_id = self._endpoint.new_call_id()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sip-upstream")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.state is RegistrationState.REGISTERED:
            await self._register(0)  # be a good citizen: take the binding down
            self.state = RegistrationState.UNREGISTERED

    async def _run(self) -> None:
        delay = RETRY_FIRST
        while True:
            granted = await self._register(self._expires)
            if granted:
                self.state, self.granted, delay = RegistrationState.REGISTERED, granted, RETRY_FIRST
                await asyncio.sleep(max(1.0, granted * 0.8))
            else:
                self.state = RegistrationState.FAILED
                log.warning("registration with the carrier failed; retrying in %.0f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _register(self, expires: int) -> int:
        """One REGISTER (answering one challenge); the expiry granted, 0 on failure."""
        response = await self._send(expires, None)
        if response is not None and response.status in (401, 407):
            response = await self._send(expires, self._authorization(response))
        if response is None or response.status >= 300:
            status = response.status if response is not None else "no answer"
            log.info("carrier REGISTER: %s", status)
            return 0
        return self._granted(response, expires)

    def _authorization(self, challenge: SipResponse) -> tuple[str, str] | None:
        client = self._carrier.credentials()
        if client is None:
            return None
        proxy = challenge.status == 407
        offered = challenge.headers.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        try:
            value = client.authorize(client.choose(offered), "REGISTER", str(self._registrar))
        except DigestError as error:
            log.warning("cannot answer the carrier's challenge: %s", error.reason)
            return None
        return ("Proxy-Authorization" if proxy else "Authorization"), value

    @property
    def _registrar(self) -> SipUri:
        return SipUri(
            self._carrier.uri.scheme,
            self._carrier.domain or self._carrier.uri.host,
            port=self._carrier.uri.port,
        )

    async def _send(
        self, expires: int, authorization: tuple[str, str] | None
    ) -> SipResponse | None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[SipResponse | None] = loop.create_future()

        def on_response(response: SipResponse) -> None:
            if response.status >= 200 and not answer.done():
                answer.set_result(response)

        def on_failure(_status: int, _reason: str) -> None:
            if not answer.done():
                answer.set_result(None)

        self._cseq += 1
        headers = {"Expires": str(expires)}
        if authorization is not None:
            headers[authorization[0]] = authorization[1]
        self._endpoint.send_request(
            "REGISTER",
            self._registrar,
            self._carrier.peer,
            on_response,
            on_failure,
            from_uri=self._carrier.aor,
            to_uri=self._carrier.aor,
            call_id=self._call_id,
            cseq=self._cseq,
            from_tag=self._tag,
            headers=headers,
        )
        return await answer

    @staticmethod
    def _granted(response: SipResponse, asked: int) -> int:
        for contact in response.contacts:
            value = contact.params.get("expires")
            if value and value.isdigit():
                return int(value)
        header = response.headers.get("Expires")
        return int(header) if header and header.isdigit() else asked


class CarrierLegs:
    """PHONE legs through the carrier: the SIP adapter's sessions, the carrier's address."""

    endpoint_type = "PHONE"

    def __init__(self, sip: SipTrunkAdapter, carrier: Carrier) -> None:
        self._sip = sip
        self.carrier = carrier

    def serves(self, endpoint: dict[str, Any]) -> bool:
        return True

    def check_endpoint(self, endpoint: dict[str, Any]) -> dict[str, list[str]]:
        number = endpoint.get("phoneNumber")
        if not isinstance(number, str) or not E164.match(number):
            return {"endpoint.phoneNumber": ["must be a number in E.164 format"]}
        return {}

    async def originate(self, leg: Leg) -> None:
        uri, peer = self.carrier.target(str(leg.endpoint["phoneNumber"]).lstrip("+"))
        await self._sip.dial(leg, uri, peer, self.carrier.credentials())

    async def send_ringing(self, leg: Leg) -> None:
        await self._sip.send_ringing(leg)

    async def pre_answer(self, leg: Leg) -> None:
        await self._sip.pre_answer(leg)

    async def answer(self, leg: Leg) -> None:
        await self._sip.answer(leg)

    async def hangup(self, leg: Leg, cause: ErrorCode) -> None:
        await self._sip.hangup(leg, cause)

    def media_port(self, leg: Leg) -> RtpMediaPort | None:
        return self._sip.media_port(leg)

    def native_media(self, leg: Leg) -> NativeMedia | None:
        return self._sip.native_media(leg)

    async def redirect_media(self, leg: Leg, target: NativeMedia | None) -> NativeMedia:
        return await self._sip.redirect_media(leg, target)

    def send_dtmf(self, leg: Leg, digit: str, duration_ms: int) -> bool:
        return self._sip.send_dtmf(leg, digit, duration_ms)
