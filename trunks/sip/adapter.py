"""SIP legs: the :class:`~gateway.core.ports.LegAdapter` for SIP endpoints, and inbound
INVITEs from trunks and phones turned into inbound legs.

An endpoint ``{"type": "SIP", "username", "sipTrunkId"}`` names a user behind a trunk: for a
REGISTERED trunk the INVITE goes to where the trunk registered from, for a STATIC trunk to its
destination hosts. An INVITE that arrives is authenticated (by source host for STATIC trunks,
by digest for REGISTERED ones) and raises CALL_RECEIVED on the configuration its dialled
number is linked to. Response codes map to call states through the core's one table.

Bypass: ``redirect_media`` re-INVITEs an endpoint so that it sends its RTP straight to another
endpoint (or back to us); while it is redirected, its own re-offers are answered for that
target, and any change of its own media is reported to the core (``on_media_changed``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from gateway.core import errors
from gateway.core.calls import CallControl, NotRouted
from gateway.core.errors import ErrorCode
from gateway.core.leg import HangupSource, Leg
from gateway.core.ports import LegAdapter, MediaRedirectFailed
from gateway.media.port import NativeMedia
from trunks.sip import sdp
from trunks.sip.auth import SipAuthenticator
from trunks.sip.dialog import peer_for
from trunks.sip.digest import DigestClient
from trunks.sip.endpoint import SipEndpoint
from trunks.sip.media import RtpMediaPort, SipMedia, native_media, sdp_codecs
from trunks.sip.message import SipRequest
from trunks.sip.registrar import LocationService
from trunks.sip.routing import TrunkHealth, destination_peer, destination_uri
from trunks.sip.session import InviteSession, ReinviteFailed
from trunks.sip.transport import Peer
from trunks.sip.trunk_store import Destination, SipTrunk
from trunks.sip.uri import NameAddr, SipUri

if TYPE_CHECKING:
    from trunks.sip.carrier import CarrierLegs

log = logging.getLogger(__name__)

CUSTOM_HEADER_PREFIX = "x-"


class TrunkDirectory(Protocol):
    def get(self, trunk_id: str) -> SipTrunk | None: ...

    def by_username(self, username: str) -> SipTrunk | None: ...

    def for_source_host(self, ip: str) -> SipTrunk | None: ...


# No answer at all from a host (timeout, refused connection, overload): worth another host.
UNREACHABLE = frozenset({408, 503})


@dataclass(frozen=True)
class Target:
    uri: SipUri
    peer: Peer
    trunk_id: str | None = None
    destination: Destination | None = None

    def __str__(self) -> str:
        return f"{self.peer.transport} {self.peer.host}:{self.peer.port}"


@dataclass
class LegSdp:
    """One leg's side of offer/answer: our o= line and last SDP; what the endpoint's own SDP
    said (its native media; the o= of its last SDP, which a session refresh repeats); and,
    while it is bypassed, the other endpoint it is told to send to."""

    state: sdp.SessionState
    native: NativeMedia | None = None
    remote_origin: sdp.Origin | None = None
    target: NativeMedia | None = None


def custom_headers(request: SipRequest) -> dict[str, str]:
    """The X- headers of an INVITE: the only ones the Calls API propagates."""
    return {
        name: value
        for name, value in request.headers
        if name.lower().startswith(CUSTOM_HEADER_PREFIX)
    }


class SipTrunkAdapter:
    endpoint_type = "SIP"

    def __init__(
        self,
        control: CallControl,
        endpoint: SipEndpoint,
        trunks: TrunkDirectory,
        location: LocationService,
        authenticator: SipAuthenticator,
        media: SipMedia,
        health: TrunkHealth,
    ) -> None:
        self._control = control
        self._endpoint = endpoint
        self._trunks = trunks
        self._location = location
        self._authenticate = authenticator
        self._media = media
        self._sessions: dict[str, InviteSession] = {}  # leg id → session
        self._legs: dict[int, str] = {}  # id(session) → leg id
        self._sdp: dict[str, LegSdp] = {}
        self._health = health
        self._fallbacks: dict[str, list[Target]] = {}
        self._targets_in_use: dict[str, Target] = {}
        self.carrier: CarrierLegs | None = None  # set when a carrier is configured
        control.register(self)
        endpoint.on_invite = self._on_invite
        # Where an endpoint's packets really come from decides whether it can be bypassed.
        media.on_latched = lambda leg_id: endpoint.loop.call_soon(control.on_media_changed, leg_id)
        media.on_digit = control.on_dtmf  # RFC 4733 key presses, as they arrive

    # -- LegAdapter: calls the platform places --------------------------------------------

    def serves(self, endpoint: dict[str, Any]) -> bool:
        return True

    def check_endpoint(self, endpoint: dict[str, Any]) -> dict[str, list[str]]:
        problems: dict[str, list[str]] = {}
        username = endpoint.get("username")
        if not username or not isinstance(username, str):
            problems["endpoint.username"] = ["must not be null"]
        trunk_id = endpoint.get("sipTrunkId")
        if not trunk_id:
            problems["endpoint.sipTrunkId"] = ["must not be null"]
        elif self._trunks.get(str(trunk_id)) is None:
            problems["endpoint.sipTrunkId"] = [f"SIP trunk {trunk_id!r} does not exist"]
        headers = endpoint.get("customHeaders") or {}
        if not isinstance(headers, dict) or any(
            not str(name).lower().startswith(CUSTOM_HEADER_PREFIX) or not isinstance(value, str)
            for name, value in headers.items()
        ):
            problems["endpoint.customHeaders"] = ["only X- headers with string values"]
        return problems

    async def originate(self, leg: Leg) -> None:
        trunk = self._trunks.get(str(leg.endpoint["sipTrunkId"]))
        targets = self._targets(trunk, str(leg.endpoint["username"])) if trunk else []
        if trunk is None or not targets or not trunk.enabled:
            # Not registered, no destination, or disabled: fail after create-call has answered.
            self._control.fail_soon(leg.id, errors.DESTINATION_UNAVAILABLE)
            return
        await self._make_offer(leg.id)
        self._dial(leg, targets)

    async def dial(
        self, leg: Leg, uri: SipUri, peer: Peer, credentials: DigestClient | None
    ) -> None:
        """Place a leg's INVITE to one address (the carrier's), answering its challenge."""
        await self._make_offer(leg.id)
        self._dial(leg, [Target(uri, peer)], credentials)

    def _dial(
        self, leg: Leg, targets: list[Target], credentials: DigestClient | None = None
    ) -> None:
        """INVITE the first target; the rest are tried if it does not answer at all."""
        target, *rest = targets
        session = InviteSession(self._endpoint, self)
        session.credentials = credentials
        self._bind(leg.id, session)
        self._fallbacks[leg.id] = rest
        caller = NameAddr(
            SipUri(
                "sip", self._endpoint.address(target.peer.transport)[0], leg.from_ or "anonymous"
            ),
            leg.from_display_name,
        )
        callee_user = leg.endpoint.get("username") or leg.endpoint.get("phoneNumber")
        callee = NameAddr(
            SipUri(
                target.uri.scheme,
                target.uri.host,
                str(callee_user or target.uri.user),
                port=target.uri.port,
            )
        )
        offer = self._state(leg.id).last_sent
        assert offer is not None  # made by _make_offer before the first _dial
        session.send_invite(
            target.uri,
            caller,
            callee,
            offer.serialize(),
            target.peer,
            leg.endpoint.get("customHeaders"),
        )
        self._targets_in_use[leg.id] = target

    async def send_ringing(self, leg: Leg) -> None:
        self._session(leg.id).ring()

    async def pre_answer(self, leg: Leg) -> None:
        session = self._session(leg.id)
        session.progress(await self._answer_sdp(leg.id, session))
        self._control.on_early_media(leg.id)

    async def answer(self, leg: Leg) -> None:
        session = self._session(leg.id)
        session.accept(session.local_sdp or await self._answer_sdp(leg.id, session))

    async def hangup(self, leg: Leg, cause: ErrorCode) -> None:
        session = self._sessions.pop(leg.id, None)
        if session is None:
            return
        self._legs.pop(id(session), None)
        self._forget_media(leg.id)
        self._fallbacks.pop(leg.id, None)
        self._targets_in_use.pop(leg.id, None)
        if session.is_uas and leg.state.is_alerting:
            session.reject(cause.sip_status, cause.sip_reason)
        else:
            session.bye()

    # -- SessionEvents --------------------------------------------------------------------

    def on_provisional(self, session: InviteSession, status: int, body: bytes | None) -> None:
        leg_id = self._legs.get(id(session))
        if leg_id is None:
            return
        if status == 183 and body and self._apply_answer(leg_id, body):
            self._control.on_early_media(leg_id)
        elif status in (180, 181, 182, 183):
            self._control.on_ringing(leg_id)

    def on_answered(self, session: InviteSession, body: bytes | None) -> None:
        leg_id = self._legs.get(id(session))
        if leg_id is None:
            return
        late_offer = session.invite is not None and not session.invite.body
        # Their answer: in the 200 (we called) or in the ACK (we offered in our 200).
        if body and (not session.is_uas or late_offer) and not self._apply_answer(leg_id, body):
            self._fail_media(leg_id)
            return
        self._control.on_answered(leg_id)

    def on_ended(self, session: InviteSession, status: int, reason: str, by_remote: bool) -> None:
        leg_id = self._legs.pop(id(session), None)
        if leg_id is None:
            return  # the platform released it: the core knows already
        self._sessions.pop(leg_id, None)
        leg = self._control.get(leg_id)
        target = self._targets_in_use.pop(leg_id, None)
        fallbacks = self._fallbacks.pop(leg_id, [])
        unreachable = status in UNREACHABLE and not session.is_uas and leg.state.is_alerting
        if unreachable and target is not None and target.destination is not None:
            self._health.mark(target.trunk_id or "", target.destination, up=False)
        if unreachable and fallbacks:
            log.info(
                "call %s: %s did not answer (%d), trying the next host", leg_id, target, status
            )
            self._dial(leg, fallbacks, session.credentials)
            return
        self._forget_media(leg_id)
        if not leg.state.is_alerting:
            cause = errors.NORMAL_HANGUP
        elif status == 487 and session.is_uas:
            cause = errors.CANCELLED  # the caller gave up
        else:
            cause = errors.from_sip_status(status)
        self._control.on_ended(leg_id, cause, HangupSource.ENDPOINT)

    def on_reoffer(self, session: InviteSession, body: bytes | None) -> bytes | None:
        leg_id = self._legs.get(id(session))
        if leg_id is None:
            return None
        if body is None:
            return session.local_sdp
        media = self._leg_sdp(leg_id)
        before = media.native
        try:
            offer = sdp.parse_sdp(body)
            if offer.origin == media.remote_origin:
                return session.local_sdp  # RFC 3264 §8: a session refresh changes nothing
            answer = self._answer_to(leg_id, offer)
        except sdp.SdpError:
            return None
        if media.native != before:  # hold, a new port or codec: the core may re-pick the path
            self._endpoint.loop.call_soon(self._control.on_media_changed, leg_id)
        return answer

    # -- inbound --------------------------------------------------------------------------

    def _on_invite(self, session: InviteSession, request: SipRequest, source: Peer) -> None:
        assert session.server is not None
        if self.carrier is not None and self.carrier.carrier.is_source(source.host):
            caller = request.from_.uri.user or "anonymous"
            self._receive(session, request, self.carrier, {"type": "PHONE", "phoneNumber": caller})
            return
        trunk = self._trunks.for_source_host(source.host)
        if trunk is None or trunk.config.invite_authentication:
            username = self._authenticate(request, session.server)
            if username is None:
                self._endpoint.forget_session(session)
                return
            trunk = self._trunks.by_username(username)
        if trunk is None or not trunk.enabled:
            session.reject(403, "Forbidden")
            return
        caller = request.from_.uri.user or "anonymous"
        endpoint: dict[str, Any] = {"type": "SIP", "username": caller, "sipTrunkId": trunk.id}
        headers = custom_headers(request)
        if headers:
            endpoint["customHeaders"] = headers
        self._receive(session, request, self, endpoint)

    def _receive(
        self,
        session: InviteSession,
        request: SipRequest,
        adapter: LegAdapter,
        endpoint: dict[str, Any],
    ) -> None:
        """An acceptable INVITE becomes an inbound leg on the configuration of its number."""
        if request.body:
            try:  # a dry run of our answer: an offer we cannot take is refused before a leg
                offer = sdp.parse_sdp(request.body)
                probe = sdp.SessionState(self._media.address)
                sdp.answer(offer, self._media.address, 9, sdp.DEFAULT_CODECS, session=probe)
            except sdp.SdpError as error:
                session.reject(488, "Not Acceptable Here", {"Warning": f'399 gateway "{error}"'})
                return
        caller = request.from_.uri.user or "anonymous"
        called = request.uri.user or ""
        try:
            leg = self._control.receive_call(adapter, endpoint, caller, called)
        except NotRouted:
            session.reject(404, "Not Found")
            return
        session.events = self
        self._bind(leg.id, session)

    def media_port(self, leg: Leg) -> RtpMediaPort | None:
        return self._media.get(leg.id)

    def send_dtmf(self, leg: Leg, digit: str, duration_ms: int) -> bool:
        """Out of band when the endpoint agreed on telephone-event; the packets go out on
        the media plane's ticks, which the core keeps the leg in while it sends."""
        port = self._media.get(leg.id)
        return port is not None and port.send_digit(digit, duration_ms)

    def native_media(self, leg: Leg) -> NativeMedia | None:
        """Only once the endpoint's RTP has been seen coming from the address its SDP names:
        one whose packets come from elsewhere (behind a NAT) would be sent into the void by
        another endpoint; only the gateway, which answers where packets come from, reaches
        it. Until its first packet nothing is known; that packet re-picks the path."""
        media, port = self._sdp.get(leg.id), self._media.get(leg.id)
        if media is None or media.native is None or port is None:
            return None
        if media.target is not None:
            return media.native  # bypassed: it sends to its target, no more to us
        session = port.session
        if not session.latched or session.remote != (media.native.address, media.native.port):
            return None
        return media.native

    async def redirect_media(self, leg: Leg, target: NativeMedia | None) -> NativeMedia:
        session, media = self._sessions.get(leg.id), self._sdp.get(leg.id)
        if session is None or media is None or media.native is None:
            raise MediaRedirectFailed(f"call {leg.id}: no media agreed on yet")
        if target == media.target:
            return media.native
        previous = media.target
        try:
            return await self._reoffer(leg.id, session, media, target)
        except sdp.SdpError as error:
            # It took the offer but answered what cannot be used: point it back, best effort.
            log.warning("call %s: unusable SDP answer to a re-INVITE: %s", leg.id, error)
            try:
                await self._reoffer(leg.id, session, media, previous)
            except (MediaRedirectFailed, sdp.SdpError) as again:
                log.warning("call %s: media could not be put back: %s", leg.id, again)
            raise MediaRedirectFailed(f"call {leg.id}: unusable SDP answer: {error}") from error

    async def _reoffer(
        self, leg_id: str, session: InviteSession, media: LegSdp, target: NativeMedia | None
    ) -> NativeMedia:
        """One re-INVITE pointing the endpoint at ``target`` (None: at our RTP port, with the
        codec in use). Nothing changes on a refusal; once answered, the offer is ours (the
        endpoint has its version) and an :class:`~trunks.sip.sdp.SdpError` says the answer
        cannot be used."""
        port = self._media.get(leg_id)
        assert port is not None
        sent: list[sdp.SessionDescription] = []

        def offer() -> bytes:
            """Asked again if glare makes the session retry: what is current then (the
            endpoint's own re-INVITE may have changed its codec meanwhile)."""
            assert media.native is not None
            # Back to us: our address and RTP port, with the codec the endpoint uses now.
            towards = target or replace(
                media.native,
                address=self._media.address,
                port=port.session.local_port,
                ptime=20,
                direction="sendrecv",
            )
            sent.append(
                sdp.make_offer(
                    towards.address,
                    towards.port,
                    sdp_codecs(towards),
                    towards.ptime,
                    towards.direction,
                    session=media.state,
                    commit=False,
                )
            )
            return sent[-1].serialize()

        try:
            body = await session.reinvite(offer)
        except ReinviteFailed as error:
            raise MediaRedirectFailed(f"call {leg_id}: re-INVITE failed: {error}") from error
        if self._sessions.get(leg_id) is not session:
            raise MediaRedirectFailed(f"call {leg_id} ended")
        offered = media.state.commit(sent[-1])
        received = sdp.parse_sdp(body)
        negotiated = sdp.apply_answer(offered, received)
        if target is None:
            port.use(negotiated)  # back through us: send where it now says
        port.session.reporting = target is None  # bypassed: our RTCP would be about nothing
        media.native, media.remote_origin = native_media(negotiated), received.origin
        media.target = target
        return media.native

    def active_calls(self, trunk_id: str) -> int:
        return sum(
            1
            for leg_id in self._sessions
            if self._control.get(leg_id).endpoint.get("sipTrunkId") == trunk_id
        )

    # -- internals ------------------------------------------------------------------------

    def _bind(self, leg_id: str, session: InviteSession) -> None:
        self._sessions[leg_id] = session
        self._legs[id(session)] = leg_id

    def _session(self, leg_id: str) -> InviteSession:
        return self._sessions[leg_id]

    def _targets(self, trunk: SipTrunk, username: str) -> list[Target]:
        """Where to send the INVITE, in the order to try: one Contact of a registered trunk,
        or a static trunk's hosts ordered by its strategy and their health."""
        if trunk.type == "REGISTERED":
            bindings = self._location.lookup(trunk.username or "")
            if not bindings:
                return []
            binding = bindings[0]
            contact = binding.contact.uri
            # Calling the registered phone itself: its Contact as it registered it (§16.6).
            # Calling a user behind a registered PBX: the PBX's Contact with that user.
            uri = contact
            if username != trunk.username:
                uri = SipUri(
                    contact.scheme,
                    contact.host,
                    username,
                    port=contact.port,
                    params=dict(contact.params),
                )
            # Over TCP and TLS, reuse the connection the trunk registered on (it may be behind
            # NAT and accept no new connections); over UDP, send where its Contact says.
            peer = binding.source if binding.source.reliable else peer_for(contact)
            return [Target(uri, peer)]
        targets = []
        for destination in self._health.order(trunk):
            uri = destination_uri(trunk, destination, username)
            targets.append(Target(uri, destination_peer(trunk, uri), trunk.id, destination))
        return targets

    def _leg_sdp(self, leg_id: str) -> LegSdp:
        if leg_id not in self._sdp:
            state = sdp.SessionState(self._media.address, username="gateway")
            self._sdp[leg_id] = LegSdp(state)
        return self._sdp[leg_id]

    def _state(self, leg_id: str) -> sdp.SessionState:
        return self._leg_sdp(leg_id).state

    async def _make_offer(self, leg_id: str) -> None:
        """Our offer, on the RTP port bound for the leg (kept as the state's last SDP)."""
        port = await self._media.open(leg_id)
        sdp.make_offer(
            self._media.address,
            port.session.local_port,
            sdp.DEFAULT_CODECS,
            session=self._state(leg_id),
        )

    def _apply_answer(self, leg_id: str, body: bytes) -> bool:
        """The far end answered our offer: send it what it chose, where it said. False when
        the answer is unusable (a codec we did not offer, no audio)."""
        port, media = self._media.get(leg_id), self._leg_sdp(leg_id)
        offer = media.state.last_sent
        if port is None or offer is None:
            return True
        try:
            received = sdp.parse_sdp(body)
            negotiated = sdp.apply_answer(offer, received)
            port.use(negotiated)
        except (sdp.SdpError, LookupError) as error:
            log.warning("call %s: unusable SDP answer: %s", leg_id, error)
            return False
        media.native, media.remote_origin = native_media(negotiated), received.origin
        return True

    async def _answer_sdp(self, leg_id: str, session: InviteSession) -> bytes:
        await self._media.open(leg_id)
        if session.remote_sdp is None:  # no offer in the INVITE: we offer in our answer
            await self._make_offer(leg_id)
            offer = self._state(leg_id).last_sent
            assert offer is not None
            return offer.serialize()
        return self._answer_to(leg_id, sdp.parse_sdp(session.remote_sdp))

    def _answer_to(self, leg_id: str, offer: sdp.SessionDescription) -> bytes:
        """Answer an offer (initial or re-INVITE) on the leg's bound RTP port; while the
        endpoint is bypassed, for its target instead, so that it keeps sending there (unless
        it now wants a codec the target cannot take: then it comes back to us)."""
        port, media = self._media.get(leg_id), self._leg_sdp(leg_id)
        assert port is not None
        target = media.target
        if target is not None:
            try:
                answer, negotiated = sdp.answer(
                    offer,
                    target.address,
                    target.port,
                    sdp_codecs(target),
                    session=media.state,
                    direction=target.direction,
                )
            except sdp.NoCommonCodec:
                log.info("call %s: its new offer leaves the bypass, answering for us", leg_id)
                target = None
        if target is None:
            answer, negotiated = sdp.answer(
                offer,
                self._media.address,
                port.session.local_port,
                sdp.DEFAULT_CODECS,
                session=media.state,
            )
            port.use(negotiated)
            media.target = None  # only once our own answer stands: it sends to us now
        media.native, media.remote_origin = native_media(negotiated), offer.origin
        return answer.serialize()

    def _fail_media(self, leg_id: str) -> None:
        """The far end answered with media we cannot use: end the call, say why."""
        session = self._sessions.pop(leg_id, None)
        if session is None:
            return
        self._legs.pop(id(session), None)
        self._forget_media(leg_id)
        session.bye()
        self._control.on_ended(leg_id, errors.NO_COMMON_CODEC, HangupSource.PLATFORM)

    def _forget_media(self, leg_id: str) -> None:
        self._sdp.pop(leg_id, None)
        self._media.close(leg_id)
