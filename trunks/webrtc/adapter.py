"""WebRTC legs: the :class:`~gateway.core.ports.LegAdapter` for endpoints
``{"type": "WEBRTC", "identity", "displayName"}``, and the signalling messages that drive them.

A call to an identity rings every socket it has connected (``incoming`` with our offer); the
first ``answer`` wins and the others are told ``hangup``. A socket's ``call`` is an inbound
leg on the calls configuration of its token's application (``applicationId``, else the
``webrtc_calls_configuration_id`` setting), answered with our SDP when the app answers.
SDP is exchanged whole (non-trickle: aiortc gathers before it describes); ``ice`` messages
with further candidates are taken too. A leg ends when its socket closes, or when its peer
connection fails (ICE or DTLS), within seconds of the far end going away.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from gateway.core import errors
from gateway.core.calls import CallControl, NotRouted, WrongState
from gateway.core.errors import ErrorCode
from gateway.core.leg import Direction, HangupSource, Leg, LegState
from gateway.core.ports import MediaRedirectFailed
from gateway.media.port import NativeMedia
from trunks.webrtc.media import WebRtcMediaPort
from trunks.webrtc.peer import IceSettings, new_peer_connection, prefer_voice_codecs
from trunks.webrtc.signalling import Signalling, Socket
from trunks.webrtc.tokens import IDENTITY

log = logging.getLogger(__name__)

DIGITS = re.compile(r"^[0-9*#A-Da-d]{1,32}$")
MAX_DESTINATION = 128
MAX_DISPLAY_NAME = 255


@dataclass(eq=False)
class WebRtcCall:
    """One WebRTC leg: its peer connection and media port, and the sockets it involves
    (every ringing tab of an outbound call until one answers; then, or for an inbound call,
    the one socket that carries it)."""

    leg_id: str
    pc: RTCPeerConnection
    port: WebRtcMediaPort
    outbound: bool
    offered: list[Socket] = field(default_factory=list)
    socket: Socket | None = None
    answer_sent: bool = False
    answering: bool = False  # a tab's answer is being applied

    def sockets(self) -> list[Socket]:
        return [self.socket] if self.socket is not None else list(self.offered)


class WebRtcAdapter:
    endpoint_type = "WEBRTC"

    def __init__(
        self,
        control: CallControl,
        signalling: Signalling,
        ice: IceSettings,
        default_configuration: str | None = None,
        media_timeout: float = 5.0,
    ) -> None:
        self._control = control
        self._media_timeout = media_timeout
        self._signalling = signalling
        self._ice = ice
        self._default_configuration = default_configuration or None
        self._calls: dict[str, WebRtcCall] = {}
        self._peers: set[RTCPeerConnection] = set()  # every one made and not yet closed
        self._tasks: set[asyncio.Task[None]] = set()
        signalling.on_message = self._on_message
        signalling.on_close = self._on_socket_closed
        control.register(self)

    @property
    def peer_count(self) -> int:
        """Peer connections not yet closed, with a leg or not (tests check none is left)."""
        return len(self._peers)

    # -- LegAdapter -----------------------------------------------------------------------

    def serves(self, endpoint: dict[str, Any]) -> bool:
        return True

    def check_endpoint(self, endpoint: dict[str, Any]) -> dict[str, list[str]]:
        problems: dict[str, list[str]] = {}
        identity = endpoint.get("identity")
        if not isinstance(identity, str) or not IDENTITY.match(identity):
            problems["endpoint.identity"] = ["must be 3 to 64 characters of A-Z a-z 0-9 _-+=/.@"]
        name = endpoint.get("displayName")
        if name is not None and (not isinstance(name, str) or len(name) > MAX_DISPLAY_NAME):
            problems["endpoint.displayName"] = [f"must be a string of at most {MAX_DISPLAY_NAME}"]
        return problems

    async def originate(self, leg: Leg) -> None:
        sockets = self._signalling.sockets(str(leg.endpoint["identity"]))
        if not sockets:  # nobody signed in as this identity
            self._control.fail_soon(leg.id, errors.DESTINATION_UNAVAILABLE)
            return
        call = self._new_call(leg.id, outbound=True)
        prefer_voice_codecs(call.pc.addTransceiver(call.port.outbound, direction="sendrecv"))
        try:
            await call.pc.setLocalDescription(await call.pc.createOffer())
        except Exception:
            if self._calls.get(leg.id) is not call:
                return  # hung up while the offer was being made: its connection is closed
            raise
        if self._calls.get(leg.id) is not call:
            return
        incoming = {
            "type": "incoming",
            "callId": leg.id,
            "from": leg.from_,
            "fromDisplayName": leg.from_display_name,
            "sdp": call.pc.localDescription.sdp,
        }
        for socket in sockets:
            if self._calls.get(leg.id) is not call or call.socket is not None:
                return  # ended, or answered by a tab (the others it rang were told)
            call.offered.append(socket)  # before the send: an answer meanwhile tells it too
            if not await socket.send(incoming) and socket in call.offered:
                call.offered.remove(socket)
        if self._calls.get(leg.id) is not call or call.socket is not None:
            return
        if call.offered:
            self._control.on_ringing(leg.id)
        else:
            await self._end(call, errors.DESTINATION_UNAVAILABLE, HangupSource.PLATFORM)

    async def send_ringing(self, leg: Leg) -> None:
        call = self._call_of(leg, "ring")
        await self._send(call, {"type": "ringing", "callId": leg.id})

    async def pre_answer(self, leg: Leg) -> None:
        call = self._call_of(leg, "pre-answer")
        await self._send_answer(call, "early-media")
        if self._calls.get(leg.id) is call:
            self._control.on_early_media(leg.id)

    async def answer(self, leg: Leg) -> None:
        call = self._call_of(leg, "answer")
        await self._send_answer(call, "answered")
        if self._calls.get(leg.id) is call:
            self._control.on_answered(leg.id)

    async def hangup(self, leg: Leg, cause: ErrorCode) -> None:
        call = self._calls.get(leg.id)
        if call is None:
            return
        await self._send(call, {"type": "hangup", "callId": leg.id, "cause": cause.name})
        await self._release(call)

    def media_port(self, leg: Leg) -> WebRtcMediaPort | None:
        call = self._calls.get(leg.id)
        return call.port if call is not None else None

    def native_media(self, leg: Leg) -> NativeMedia | None:
        """DTLS-SRTP ends here: a browser's media is always mixed, never bypassed."""
        return None

    async def redirect_media(self, leg: Leg, target: NativeMedia | None) -> NativeMedia:
        raise MediaRedirectFailed("WebRTC media ends at the gateway (DTLS-SRTP)")

    def send_dtmf(self, leg: Leg, digit: str, duration_ms: int) -> bool:
        """aiortc sends no RFC 4733 events: the core plays the digit in-band."""
        return False

    async def close(self) -> None:
        for call in list(self._calls.values()):
            await self._release(call)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._signalling.close()

    # -- signalling -----------------------------------------------------------------------

    async def _on_message(self, socket: Socket, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "call":
            await self._on_call(socket, message)
            return
        handler = {
            "answer": self._on_answer,
            "reject": self._on_reject,
            "hangup": self._on_hangup,
            "dtmf": self._on_dtmf,
            "mute": self._on_mute,
            "ice": self._on_ice,
        }.get(kind)
        if handler is None:
            await _error(socket, message, f"unknown message type {kind!r}")
            return
        call = self._calls.get(str(message.get("callId")))
        if call is None or socket not in call.sockets():
            await _error(socket, message, "no such call on this socket")
            return
        await handler(socket, call, message)

    async def _on_call(self, socket: Socket, message: dict[str, Any]) -> None:
        """The browser calls: an inbound leg, once its offer is known to be usable."""
        to, sdp = message.get("to"), message.get("sdp")
        configuration = socket.grant.application_id or self._default_configuration
        if not isinstance(to, str) or not 0 < len(to) <= MAX_DESTINATION:
            await _error(socket, message, "'to' must be a non-empty string")
            return
        if not isinstance(sdp, str):
            await _error(socket, message, "'sdp' must be the offer's SDP")
            return
        if configuration is None:
            await _error(socket, message, "the token names no application to call")
            return
        call = self._new_call(None, outbound=False)
        try:
            await call.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            if not any(t.kind == "audio" for t in call.pc.getTransceivers()):
                raise ValueError("no audio in the offer")  # aiortc takes an SDP without media
            call.pc.addTrack(call.port.outbound)
        except Exception as error:  # aiortc raises ValueError and others for bad SDP
            await self._discard(call)
            await _error(socket, message, f"unusable offer: {error}")
            return
        endpoint: dict[str, Any] = {"type": "WEBRTC", "identity": socket.identity}
        if socket.grant.display_name:
            endpoint["displayName"] = socket.grant.display_name
        try:
            leg = self._control.receive_call(
                self, endpoint, socket.identity, to, calls_configuration_id=configuration
            )
        except NotRouted as error:
            await self._discard(call)
            await _error(socket, message, str(error))
            return
        call.leg_id, call.socket = leg.id, socket
        self._calls[leg.id] = call
        await socket.send({"type": "calling", "ref": message.get("ref"), "callId": leg.id})

    async def _on_answer(self, socket: Socket, call: WebRtcCall, message: dict[str, Any]) -> None:
        leg = self._control.live(call.leg_id)
        if not call.outbound or leg is None or not leg.state.is_alerting or call.answering:
            await _error(socket, message, "the call cannot be answered")
            return
        if not isinstance(message.get("sdp"), str):
            await _error(socket, message, "'sdp' must be the answer's SDP")
            return
        call.answering = True  # another tab's answer meanwhile is refused, not applied too
        try:
            await call.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
        except Exception as error:
            call.answering = False
            if self._calls.get(call.leg_id) is not call:
                return  # hung up meanwhile: its connection was closed under the answer
            await _error(socket, message, f"unusable answer: {error}")
            await self._send(
                call, {"type": "hangup", "callId": call.leg_id, "cause": "NO_COMMON_CODEC"}
            )
            await self._end(call, errors.NO_COMMON_CODEC, HangupSource.PLATFORM)
            return
        if self._calls.get(call.leg_id) is not call:
            return  # hung up while the answer was applied: the tabs were told
        others = [s for s in call.offered if s is not socket]
        call.socket, call.offered = socket, [socket]
        for other in others:
            await other.send(
                {"type": "hangup", "callId": call.leg_id, "cause": "ANSWERED_ELSEWHERE"}
            )
        self._control.on_answered(call.leg_id)

    async def _on_reject(self, socket: Socket, call: WebRtcCall, message: dict[str, Any]) -> None:
        leg = self._control.live(call.leg_id)
        if not call.outbound or leg is None or not leg.state.is_alerting or call.answering:
            await _error(socket, message, "only a ringing call can be rejected")
            return
        cause = errors.BUSY if message.get("reason") == "BUSY" else errors.REJECTED
        call.offered.remove(socket)
        await self._send(call, {"type": "hangup", "callId": call.leg_id, "cause": cause.name})
        await self._end(call, cause, HangupSource.ENDPOINT)

    async def _on_hangup(self, socket: Socket, call: WebRtcCall, message: dict[str, Any]) -> None:
        if call.socket is None:  # one tab of several declines by hanging up: as a reject
            await self._on_reject(socket, call, message)
            return
        await self._end(call, self._cause_of_leaving(call), HangupSource.ENDPOINT)

    async def _on_dtmf(self, socket: Socket, call: WebRtcCall, message: dict[str, Any]) -> None:
        """Keys pressed in the page, sent as signalling: the fallback of a call that agreed no
        telephone-event (with one, the keys come as RFC 4733 events through ``on_digit``)."""
        digits = message.get("digits")
        leg = self._control.live(call.leg_id)
        if not isinstance(digits, str) or not DIGITS.match(digits):
            await _error(socket, message, "'digits' must be 1 to 32 of 0-9 * # A-D")
            return
        if leg is None or leg.state not in (LegState.ESTABLISHED, LegState.PRE_ESTABLISHED):
            await _error(socket, message, "the call has no media yet")
            return
        for digit in digits.upper():
            self._control.on_dtmf(call.leg_id, digit)

    async def _on_mute(self, socket: Socket, call: WebRtcCall, message: dict[str, Any]) -> None:
        muted = message.get("muted", True)
        if not isinstance(muted, bool):
            await _error(socket, message, "'muted' must be true or false")
            return
        call.port.muted = muted
        self._control.on_user_muted(call.leg_id, muted)

    async def _on_ice(self, socket: Socket, call: WebRtcCall, message: dict[str, Any]) -> None:
        """A trickled candidate ({candidate, sdpMid, sdpMLineIndex}, as the browser has it)."""
        body = message.get("candidate")
        if not isinstance(body, dict) or not body.get("candidate"):
            return  # the end-of-candidates marker: nothing to do
        try:
            candidate = candidate_from_sdp(str(body["candidate"]).removeprefix("candidate:"))
            candidate.sdpMid = body.get("sdpMid")
            candidate.sdpMLineIndex = body.get("sdpMLineIndex")
            await call.pc.addIceCandidate(candidate)
        except Exception as error:
            await _error(socket, message, f"unusable candidate: {error}")

    async def _on_socket_closed(self, socket: Socket) -> None:
        """A tab closed: the calls it carried end; a ringing call no tab is left for fails."""
        for call in list(self._calls.values()):
            if call.socket is socket:
                await self._end(call, self._cause_of_leaving(call), HangupSource.ENDPOINT)
            elif call.socket is None and socket in call.offered:
                call.offered.remove(socket)
                if not call.offered:
                    await self._end(call, errors.DESTINATION_UNAVAILABLE, HangupSource.ENDPOINT)

    # -- internals ------------------------------------------------------------------------

    def _new_call(self, leg_id: str | None, outbound: bool) -> WebRtcCall:
        def on_digit(digit: str) -> None:  # an RFC 4733 key press the peer sent
            self._control.on_dtmf(call.leg_id, digit)

        pc = new_peer_connection(self._ice, on_digit)
        self._peers.add(pc)
        port = WebRtcMediaPort(self._media_timeout)
        call = WebRtcCall(leg_id or "", pc, port, outbound)
        port.on_lost = lambda: self._spawn(self._media_lost(call))
        if leg_id is not None:
            self._calls[leg_id] = call

        @pc.on("track")
        def on_track(track: Any) -> None:
            call.port.attach(track)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            """ICE or DTLS failed, or the far end closed DTLS (a page that closed its peer
            connection): the leg ends. A connection we close ourselves is no longer listed."""
            if pc.connectionState in ("failed", "closed") and self._calls.get(call.leg_id) is call:
                log.info("call %s: peer connection %s, ending it", call.leg_id, pc.connectionState)
                self._spawn(self._end(call, self._cause_of_leaving(call), HangupSource.ENDPOINT))

        return call

    async def _media_lost(self, call: WebRtcCall) -> None:
        """RTP stopped with the socket open: the page is told, then the leg ends."""
        if self._calls.get(call.leg_id) is not call:
            return
        cause = self._cause_of_leaving(call)
        await self._send(call, {"type": "hangup", "callId": call.leg_id, "cause": cause.name})
        await self._end(call, cause, HangupSource.ENDPOINT)

    def _call_of(self, leg: Leg, verb: str) -> WebRtcCall:
        """The leg's call; a leg whose tab just went (its end not yet reported) has none."""
        call = self._calls.get(leg.id)
        if call is None:
            raise WrongState(f"Cannot {verb} call {leg.id!r}: its endpoint has gone.")
        return call

    def _cause_of_leaving(self, call: WebRtcCall) -> ErrorCode:
        """The endpoint went away: a hang-up once answered, else how an unanswered call ends."""
        leg = self._control.live(call.leg_id)
        if leg is None or leg.state is LegState.ESTABLISHED:
            return errors.NORMAL_HANGUP
        return errors.CANCELLED if leg.direction is Direction.INBOUND else errors.REJECTED

    async def _send_answer(self, call: WebRtcCall, kind: str) -> None:
        """Our answer to the browser's offer, made once (early media, then the answer)."""
        message: dict[str, Any] = {"type": kind, "callId": call.leg_id}
        if not call.answer_sent:
            await call.pc.setLocalDescription(await call.pc.createAnswer())
            message["sdp"] = call.pc.localDescription.sdp
            call.answer_sent = True
        await self._send(call, message)

    async def _send(self, call: WebRtcCall, message: dict[str, Any]) -> None:
        for socket in call.sockets():
            await socket.send(message)

    async def _end(self, call: WebRtcCall, cause: ErrorCode, source: HangupSource) -> None:
        """The far end (or its connection) ended the leg: release, then tell the core."""
        if self._calls.get(call.leg_id) is not call:
            return
        await self._release(call)
        self._control.on_ended(call.leg_id, cause, source)

    async def _release(self, call: WebRtcCall) -> None:
        if self._calls.get(call.leg_id) is call:
            del self._calls[call.leg_id]
        await self._discard(call)

    async def _discard(self, call: WebRtcCall) -> None:
        await call.port.close()
        await call.pc.close()
        self._peers.discard(call.pc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _error(socket: Socket, message: dict[str, Any], reason: str) -> None:
    reply: dict[str, Any] = {"type": "error", "reason": reason}
    for key in ("ref", "callId"):
        if message.get(key) is not None:
            reply[key] = message[key]
    await socket.send(reply)
