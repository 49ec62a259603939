"""INVITE sessions (RFC 3261 §13-15): the offer/answer exchange of one call, early and
confirmed dialogs, 2xx retransmission, CANCEL, re-INVITE (theirs and ours) and BYE, for both
UAC and UAS.

SDP stays opaque bytes here: the adapter above negotiates it. A session reports what the far
end does through its :class:`SessionEvents`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from trunks.sip.dialog import Dialog, new_tag
from trunks.sip.digest import DigestClient, DigestError
from trunks.sip.message import Headers, SipRequest, SipResponse
from trunks.sip.transaction import (
    T1,
    T2,
    ClientTransaction,
    ServerTransaction,
    response_to,
)
from trunks.sip.transport import Peer
from trunks.sip.uri import NameAddr, SipUri

if TYPE_CHECKING:
    from trunks.sip.endpoint import SipEndpoint

log = logging.getLogger(__name__)

SDP = "application/sdp"
GLARE_RETRIES = 3  # 491s to one re-INVITE of ours before it fails


class ReinviteFailed(Exception):
    """Our re-INVITE did not change the session: a non-2xx final response (``status``), no
    response at all (408), or the session ended first (``status`` None). The media stays as
    it was."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason if status is None else f"{status} {reason}")
        self.status = status


@dataclass(eq=False)
class _Reoffer:
    """Our pending re-INVITE: asked for its SDP at each attempt, answered once."""

    offer: Callable[[], bytes]
    answered: asyncio.Future[bytes]
    glares: int = 0
    body: bytes = b""
    client: ClientTransaction | None = None  # in flight: a re-INVITE of theirs gets 491
    retry: asyncio.TimerHandle | None = None  # waiting out a glare (§14.1)
    authorized: bool = False  # a challenge was answered once


class Phase(Enum):
    INITIAL = "initial"
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class SessionEvents(Protocol):
    def on_provisional(self, session: InviteSession, status: int, sdp: bytes | None) -> None:
        """180/183 from the callee (UAC side); ``sdp`` is early media when present."""

    def on_answered(self, session: InviteSession, sdp: bytes | None) -> None:
        """The callee answered (UAC), or our answer was acknowledged (UAS)."""

    def on_ended(self, session: InviteSession, status: int, reason: str, by_remote: bool) -> None:
        """The session is over: a failure status before answer, or 200 for a BYE."""

    def on_reoffer(self, session: InviteSession, sdp: bytes | None) -> bytes | None:
        """A re-INVITE: return the SDP answer (None refuses it with 488)."""


class InviteSession:
    def __init__(self, endpoint: SipEndpoint, events: SessionEvents | None = None) -> None:
        self.endpoint = endpoint
        self.events = events
        self.phase = Phase.INITIAL
        self.dialog: Dialog | None = None
        self.local_sdp: bytes | None = None
        self.remote_sdp: bytes | None = None
        self.invite: SipRequest | None = None
        # UAS
        self.server: ServerTransaction | None = None
        self.local_tag = new_tag()
        self._retransmit: asyncio.TimerHandle | None = None
        self._ok: SipResponse | None = None
        self._rseq = 0
        self._unacked: SipResponse | None = None  # a reliable provisional awaiting PRACK
        self._prack_timer: asyncio.TimerHandle | None = None
        # UAC
        self.client: ClientTransaction | None = None
        self._cancel_wanted = False
        self._provisional_seen = False
        self._ack: SipRequest | None = None
        self.credentials: DigestClient | None = None  # for trunks that challenge our INVITEs
        self._authorized = False
        # re-INVITEs of ours, either side
        self._reinvite_lock = asyncio.Lock()
        self._reoffer: _Reoffer | None = None
        self._reinvite_ack: SipRequest | None = None
        # re-INVITEs of theirs: our 2xx, retransmitted until its ACK (§13.3.1.4)
        self._reanswer: SipResponse | None = None
        self._reanswer_timer: asyncio.TimerHandle | None = None

    @property
    def is_uas(self) -> bool:
        return self.server is not None

    @property
    def call_id(self) -> str:
        return self.invite.call_id if self.invite else ""

    # -- UAS ------------------------------------------------------------------------------

    def receive_invite(self, request: SipRequest, transaction: ServerTransaction) -> None:
        self.invite, self.server = request, transaction
        transaction.to_tag = self.local_tag
        self.remote_sdp = request.body or None

    def ring(self) -> None:
        self._provisional(180, "Ringing", None)

    def progress(self, sdp: bytes) -> None:
        """183 Session Progress with our SDP: early media."""
        self.local_sdp = sdp
        self._provisional(183, "Session Progress", sdp)

    def _provisional(self, status: int, reason: str, sdp: bytes | None) -> None:
        if self.server is None or self.phase not in (Phase.INITIAL, Phase.EARLY):
            return
        self.phase = Phase.EARLY
        response = self._uas_response(status, reason, sdp)
        if self._peer_requires_100rel():
            if self._unacked is not None:
                return  # RFC 3262 §3: one unacknowledged reliable provisional at a time
            self._send_reliably(response)
            return
        self.server.respond(response)

    def _peer_requires_100rel(self) -> bool:
        assert self.invite is not None
        return "100rel" in (v.lower() for v in self.invite.headers.get_all("Require"))

    def _send_reliably(self, response: SipResponse) -> None:
        """RFC 3262: a provisional response with RSeq, retransmitted until its PRACK."""
        assert self.server is not None and self.invite is not None
        self._rseq += 1
        response.headers.add("Require", "100rel")
        response.headers.add("RSeq", str(self._rseq))
        if self.dialog is None:  # the early dialog the PRACK will arrive in
            contact = self.endpoint.contact_for(self.server.source.transport)
            self.dialog = Dialog.as_uas(
                self.invite, self.local_tag, contact, self.server.source.transport
            )
            self.endpoint.register_dialog(self)
        self._unacked = response
        self.server.respond(response)
        self._schedule_reliable(T1, 0.0)

    def _schedule_reliable(self, interval: float, elapsed: float) -> None:
        if elapsed + interval > 64 * T1:
            self._prack_timer = self.endpoint.loop.call_later(interval, self._prack_timeout)
        else:
            self._prack_timer = self.endpoint.loop.call_later(
                interval, self._resend_reliable, interval, elapsed + interval
            )

    def _resend_reliable(self, interval: float, elapsed: float) -> None:
        if self._unacked is not None and self.server is not None:
            self.endpoint.transport.send(self._unacked, self.server.peer)
            self._schedule_reliable(interval * 2, elapsed)

    def _prack_timeout(self) -> None:
        """§3: no PRACK for a reliable provisional: the INVITE fails with a 5xx."""
        self._prack_timer = None
        self._unacked = None
        self.reject(504, "Server Time-out")

    def _receive_prack(self, request: SipRequest, transaction: ServerTransaction) -> None:
        rack = (request.headers.get("RAck") or "").split()
        expected = [str(self._rseq), str(self.invite.cseq[0]), "INVITE"] if self.invite else None
        if self._unacked is None or rack != expected:
            transaction.reply(481, "Call/Transaction Does Not Exist")
            return
        self._unacked = None
        if self._prack_timer is not None:
            self._prack_timer.cancel()
            self._prack_timer = None
        transaction.reply(200, "OK")

    def accept(self, sdp: bytes) -> None:
        """200 OK with our answer (or offer, if the INVITE had none); retransmitted until ACK."""
        assert self.server is not None and self.invite is not None
        if self.phase not in (Phase.INITIAL, Phase.EARLY):
            return
        self.local_sdp = sdp
        self._ok = self._uas_response(200, "OK", sdp)
        contact = self.endpoint.contact_for(self.server.source.transport)
        self.dialog = Dialog.as_uas(
            self.invite, self.local_tag, contact, self.server.source.transport
        )
        self.endpoint.register_dialog(self)
        self.phase = Phase.CONFIRMED
        self.server.respond(self._ok)
        self._schedule_ok(T1, 0.0)

    def reject(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        if self.server is None or self.phase not in (Phase.INITIAL, Phase.EARLY):
            return
        response = self._uas_response(status, reason, None)
        for name, value in (headers or {}).items():
            response.headers.add(name, value)
        self.server.respond(response)
        self._end(status, reason, by_remote=False)

    def receive_cancel(self) -> None:
        """§9.2: the caller gave up before the answer."""
        if self.phase in (Phase.INITIAL, Phase.EARLY) and self.server is not None:
            self.server.respond(self._uas_response(487, "Request Terminated", None))
            self._end(487, "Request Terminated", by_remote=True)

    def receive_ack(self, ack: SipRequest) -> None:
        reanswer = self._reanswer
        if reanswer is not None and ack.cseq[0] == reanswer.cseq[0]:
            self._stop_reanswer()  # the ACK of our 2xx to their re-INVITE
            return
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None
            if ack.body:
                self.remote_sdp = ack.body
            if self.events is not None:
                self.events.on_answered(self, self.remote_sdp)

    def _schedule_ok(self, interval: float, elapsed: float) -> None:
        if elapsed + interval > 64 * T1:
            self._retransmit = self.endpoint.loop.call_later(interval, self._ack_timeout)
            return
        self._retransmit = self.endpoint.loop.call_later(
            interval, self._resend_ok, interval, elapsed + interval
        )

    def _resend_ok(self, interval: float, elapsed: float) -> None:
        if self._ok is not None and self.server is not None and self.phase is Phase.CONFIRMED:
            self.endpoint.transport.send(self._ok, self.server.peer)
            self._schedule_ok(min(interval * 2, T2), elapsed)

    def _ack_timeout(self) -> None:
        """§13.3.1.4: no ACK for our 2xx: the session is over; say so with a BYE."""
        self._retransmit = None
        log.info("no ACK for the 200 OK of call %s", self.call_id)
        self.bye()

    def _uas_response(self, status: int, reason: str, sdp: bytes | None) -> SipResponse:
        assert self.invite is not None and self.server is not None
        response = response_to(self.invite, status, reason, self.local_tag)
        if 100 < status < 300:
            response.headers.add("Contact", self.endpoint.contact_for(self.server.source.transport))
            response.headers.add("Allow", self.endpoint.allow)
        if sdp is not None:
            response.headers.add("Content-Type", SDP)
            response.body = sdp
        return response

    # -- UAC ------------------------------------------------------------------------------

    def send_invite(
        self,
        target: SipUri,
        from_: NameAddr,
        to: NameAddr,
        sdp: bytes | None,
        peer: Peer,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        from_.params["tag"] = self.local_tag
        headers = Headers()
        headers.add("Via", str(self.endpoint.via(peer.transport)))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(from_))
        headers.add("To", str(to))
        headers.add("Call-ID", self.endpoint.new_call_id())
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", self.endpoint.contact_for(peer.transport))
        headers.add("Allow", self.endpoint.allow)
        for name, value in (extra_headers or {}).items():
            headers.add(name, value)
        if sdp is not None:
            headers.add("Content-Type", SDP)
        self.local_sdp = sdp
        self.invite = SipRequest(headers, sdp or b"", "INVITE", target)
        self.endpoint.register_session(self)
        self.client = self.endpoint.transactions.send_request(
            self.invite, peer, self._on_invite_response, self._on_invite_failure
        )

    def cancel(self) -> None:
        """§9.1: CANCEL once a provisional response arrived; before that, as soon as one does."""
        if self.phase not in (Phase.INITIAL, Phase.EARLY) or self.client is None:
            return
        if not self._provisional_seen:
            self._cancel_wanted = True
            return
        assert self.invite is not None
        headers = Headers()
        headers.add("Via", self.invite.headers.get_all("Via")[0])
        for name in ("Route",):
            for value in self.invite.headers.get_all(name):
                headers.add(name, value)
        headers.add("Max-Forwards", "70")
        headers.add("From", self.invite.headers.get("From") or "")
        headers.add("To", self.invite.headers.get("To") or "")
        headers.add("Call-ID", self.invite.call_id)
        headers.add("CSeq", f"{self.invite.cseq[0]} CANCEL")
        cancel = SipRequest(headers, b"", "CANCEL", self.invite.uri)
        self.endpoint.transactions.send_request(
            cancel, self.client.peer, lambda _response: None, lambda _s, _r: None
        )

    def _on_invite_response(self, response: SipResponse) -> None:
        status = response.status
        if status == 100:
            return
        if status < 200:
            self._provisional_seen = True
            if self._cancel_wanted:
                self._cancel_wanted = False
                self.cancel()
                return
            if self.phase is Phase.INITIAL:
                self.phase = Phase.EARLY
            sdp = response.body or None
            if sdp is not None:
                self.remote_sdp = sdp
            if self.events is not None:
                self.events.on_provisional(self, status, sdp)
            return
        if status < 300:
            self._on_2xx(response)
            return
        if status in (401, 407) and self._retry_with_credentials(response):
            return
        self._end(status, response.reason, by_remote=True)

    def _answer_challenge(self, challenge: SipResponse, uri: str) -> tuple[str, str] | None:
        """§22.2: the header that answers a 401/407 to an INVITE of ours (None: we have no
        credentials, or none of the challenges is one we can answer)."""
        if self.credentials is None:
            return None
        proxy = challenge.status == 407
        offered = challenge.headers.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        try:
            chosen = self.credentials.choose(offered)
            authorization = self.credentials.authorize(chosen, "INVITE", uri)
        except DigestError as error:
            log.info("cannot answer the challenge for call %s: %s", self.call_id, error.reason)
            return None
        return ("Proxy-Authorization" if proxy else "Authorization"), authorization

    def _retry_with_credentials(self, challenge: SipResponse) -> bool:
        """§22.2: answer one challenge with a new INVITE (same dialog ids, CSeq + 1)."""
        if self._authorized or self.invite is None:
            return False
        answer = self._answer_challenge(challenge, str(self.invite.uri))
        if answer is None:
            return False
        self._authorized = True
        assert self.client is not None
        headers = self.invite.headers.copy()
        headers.set("Via", str(self.endpoint.via(self.client.peer.transport)))
        headers.set("CSeq", f"{self.invite.cseq[0] + 1} INVITE")
        headers.add(*answer)
        self.invite = SipRequest(headers, self.invite.body, "INVITE", self.invite.uri)
        self.client = self.endpoint.transactions.send_request(
            self.invite, self.client.peer, self._on_invite_response, self._on_invite_failure
        )
        return True

    def _on_2xx(self, response: SipResponse) -> None:
        assert self.invite is not None and self.client is not None
        if self.dialog is None:
            self.dialog = Dialog.as_uac(self.invite, response, self.client.peer.transport)
            self.endpoint.register_dialog(self)
        if self._ack is None:
            self._ack = self._build_ack()
        self.endpoint.transport.send(self._ack, self.dialog.next_peer())
        if self.phase is Phase.CONFIRMED or self.phase is Phase.TERMINATED:
            return  # a retransmitted 2xx: the ACK above answered it
        if self._cancel_wanted:  # answered before our CANCEL could go: hang up instead
            self.phase = Phase.CONFIRMED
            self.bye()
            return
        self.phase = Phase.CONFIRMED
        if response.body:
            self.remote_sdp = response.body
        if self.events is not None:
            self.events.on_answered(self, self.remote_sdp)

    def receive_stray_2xx(self, response: SipResponse) -> None:
        """A 2xx retransmitted after the transaction ended: ACK it again (the INVITE's or
        our last re-INVITE's, by CSeq)."""
        ack = self._ack
        reinvite_ack = self._reinvite_ack
        if reinvite_ack is not None and reinvite_ack.cseq[0] == response.cseq[0]:
            ack = reinvite_ack
        if ack is not None and self.dialog is not None:
            self.endpoint.transport.send(ack, self.dialog.next_peer())

    def _build_ack(self) -> SipRequest:
        assert self.dialog is not None and self.invite is not None
        via = self.endpoint.via(self.dialog.transport)
        return self.dialog.request("ACK", via.host, via.port or 0, cseq=self.invite.cseq[0])

    def _on_invite_failure(self, status: int, reason: str) -> None:
        self._end(status, reason, by_remote=True)

    # -- both -----------------------------------------------------------------------------

    def bye(self) -> None:
        """Hang up: BYE when confirmed, CANCEL when the callee has not answered, or reject."""
        if self.phase in (Phase.INITIAL, Phase.EARLY):
            if self.is_uas:
                self.reject(480, "Temporarily Unavailable")
            else:
                self.cancel()
            return
        if self.phase is not Phase.CONFIRMED or self.dialog is None:
            return
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None
        via = self.endpoint.via(self.dialog.transport)
        request = self.dialog.request("BYE", via.host, via.port or 0)
        self.endpoint.transactions.send_request(
            request, self.dialog.next_peer(), lambda _response: None, lambda _s, _r: None
        )
        self._end(200, "BYE", by_remote=False)

    def receive_in_dialog(self, request: SipRequest, transaction: ServerTransaction) -> None:
        assert self.dialog is not None
        if not self.dialog.accepts(request):
            transaction.reply(500, "Server Internal Error", {"Retry-After": "1"})
            return
        method = request.method
        if method == "BYE":
            transaction.reply(200, "OK")
            if self._retransmit is not None and self.is_uas:
                # Our 2xx is still unacknowledged (its ACK lost or late), but a BYE carrying
                # our To tag proves the caller got it: the call was answered, then hung up.
                self._retransmit.cancel()
                self._retransmit = None
                if self.events is not None:
                    self.events.on_answered(self, self.remote_sdp)
            self._end(200, "BYE", by_remote=True)
        elif method == "INVITE":
            self._receive_reinvite(request, transaction)
        elif method == "PRACK":
            self._receive_prack(request, transaction)
        elif method in ("OPTIONS", "INFO", "UPDATE", "NOTIFY"):
            transaction.reply(200, "OK")
        else:
            transaction.reply(405, "Method Not Allowed", {"Allow": self.endpoint.allow})

    # -- re-INVITEs of ours (§14.1) -------------------------------------------------------

    async def reinvite(self, offer: Callable[[], bytes]) -> bytes:
        """Re-INVITE the far end in our confirmed dialog with the SDP ``offer()`` makes, and
        return the answer from its 2xx (ACKed here). ``offer`` is asked again for each
        attempt, so a retry after glare (491) offers what is current then.

        One at a time: a second call waits for the first. Raises :class:`ReinviteFailed`.
        """
        async with self._reinvite_lock:
            if self.phase is not Phase.CONFIRMED or self.dialog is None:
                raise ReinviteFailed("no confirmed dialog")
            if self._retransmit is not None:  # §14.1: our INVITE's 2xx is not ACKed yet
                raise ReinviteFailed("the call is not acknowledged yet")
            pending = self._reoffer = _Reoffer(offer, self.endpoint.loop.create_future())
            try:
                self._send_reinvite(pending)
                return await pending.answered
            finally:
                self._reoffer = None
                if pending.retry is not None:
                    pending.retry.cancel()

    def _send_reinvite(
        self, pending: _Reoffer, authorization: tuple[str, str] | None = None
    ) -> None:
        """Send the re-INVITE with a fresh offer; with ``authorization`` (answering a
        challenge), the same offer again, now with credentials."""
        assert self.dialog is not None
        pending.retry = None
        if authorization is None:
            pending.body = pending.offer()
        via = self.endpoint.via(self.dialog.transport)
        request = self.dialog.request("INVITE", via.host, via.port or 0, pending.body, SDP)
        request.headers.add("Allow", self.endpoint.allow)
        if authorization is not None:
            request.headers.add(*authorization)
        pending.client = self.endpoint.transactions.send_request(
            request,
            self.dialog.next_peer(),
            lambda response: self._on_reinvite_response(pending, request, response),
            lambda status, reason: self._reinvite_failed(pending, status, reason),
        )

    def _retry_reinvite(self, pending: _Reoffer) -> None:
        try:
            self._send_reinvite(pending)
        except Exception as error:  # the offer could not be made: the caller hears why
            if not pending.answered.done():
                pending.answered.set_exception(error)

    def _on_reinvite_response(
        self, pending: _Reoffer, request: SipRequest, response: SipResponse
    ) -> None:
        status = response.status
        if status < 200:
            return
        assert self.dialog is not None
        if status >= 300:
            pending.client = None
            if status == 491 and pending.glares < GLARE_RETRIES and self.phase is Phase.CONFIRMED:
                # §14.1: the Call-ID's owner waits 2.1-4 s, the other side 0-2 s, in 10 ms.
                pending.glares += 1
                low, high = (0, 200) if self.is_uas else (210, 400)
                delay = random.randint(low, high) / 100
                pending.retry = self.endpoint.loop.call_later(delay, self._retry_reinvite, pending)
                return
            if status in (401, 407) and not pending.authorized and self.phase is Phase.CONFIRMED:
                answer = self._answer_challenge(response, str(request.uri))
                if answer is not None:  # a trunk that challenges in-dialog requests too
                    pending.authorized = True
                    self._send_reinvite(pending, answer)
                    return
            self._reinvite_failed(pending, status, response.reason)
            return
        first = not pending.answered.done()
        if first and response.contacts:  # a 2xx to a re-INVITE refreshes the target
            self.dialog.remote_target = response.contacts[0].uri
        ack = self._reinvite_ack
        if ack is None or ack.cseq[0] != request.cseq[0]:
            via = self.endpoint.via(self.dialog.transport)
            ack = self._reinvite_ack = self.dialog.request(
                "ACK", via.host, via.port or 0, cseq=request.cseq[0]
            )
        self.endpoint.transport.send(ack, self.dialog.next_peer())  # again for each 2xx
        if first:
            pending.client = None
            self.local_sdp, self.remote_sdp = pending.body, response.body or None
            pending.answered.set_result(response.body)

    def _reinvite_failed(self, pending: _Reoffer, status: int, reason: str) -> None:
        pending.client = None
        if not pending.answered.done():
            pending.answered.set_exception(ReinviteFailed(reason, status))
        if status in (408, 481) and self.phase is Phase.CONFIRMED:
            # §12.2.1.2, §14.1: no answer, or no such dialog there: the dialog is over.
            log.info("re-INVITE of call %s: %d %s, hanging up", self.call_id, status, reason)
            self.bye()

    # -- re-INVITEs of theirs (§14.2) ------------------------------------------------------

    def _receive_reinvite(self, request: SipRequest, transaction: ServerTransaction) -> None:
        if self._reoffer is not None and self._reoffer.client is not None:
            transaction.reply(491, "Request Pending")  # §14.2: ours is still in flight
            return
        answer = self.local_sdp
        if self.events is not None:
            answer = self.events.on_reoffer(self, request.body or None)
        if answer is None:
            transaction.reply(488, "Not Acceptable Here")
            return
        if request.body:
            self.remote_sdp = request.body
        if request.contacts:  # a target refresh (§12.2.2)
            self.dialog.remote_target = request.contacts[0].uri
        self.local_sdp = answer
        response = response_to(request, 200, "OK", self.dialog.local_tag)
        response.headers.add("Contact", self.endpoint.contact_for(transaction.source.transport))
        response.headers.add("Content-Type", SDP)
        response.body = answer
        transaction.respond(response)
        self._stop_reanswer()
        self._reanswer = response
        self._schedule_reanswer(transaction.peer, T1, 0.0)

    def _schedule_reanswer(self, peer: Peer, interval: float, elapsed: float) -> None:
        """Our 2xx to their re-INVITE is the TU's to repeat until ACKed, as the first one
        (§13.3.1.4, RFC 6026): a lost 200 would otherwise leave them retrying forever."""
        loop = self.endpoint.loop
        if elapsed + interval > 64 * T1:
            self._reanswer_timer = loop.call_later(interval, self._reanswer_timeout)
            return
        self._reanswer_timer = loop.call_later(
            interval, self._resend_reanswer, peer, interval, elapsed + interval
        )

    def _resend_reanswer(self, peer: Peer, interval: float, elapsed: float) -> None:
        if self._reanswer is not None and self.phase is Phase.CONFIRMED:
            self.endpoint.transport.send(self._reanswer, peer)
            self._schedule_reanswer(peer, min(interval * 2, T2), elapsed)

    def _reanswer_timeout(self) -> None:
        self._reanswer_timer = None
        self._reanswer = None
        log.info("no ACK for our 200 OK to a re-INVITE of call %s", self.call_id)
        self.bye()

    def _stop_reanswer(self) -> None:
        if self._reanswer_timer is not None:
            self._reanswer_timer.cancel()
            self._reanswer_timer = None
        self._reanswer = None

    def _end(self, status: int, reason: str, by_remote: bool) -> None:
        if self.phase is Phase.TERMINATED:
            return
        self.phase = Phase.TERMINATED
        if self._prack_timer is not None:
            self._prack_timer.cancel()
            self._prack_timer = None
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None
        self._stop_reanswer()
        pending = self._reoffer
        if pending is not None:  # its awaiting caller wakes up; reinvite() drops the timer
            if pending.retry is not None:
                pending.retry.cancel()
                pending.retry = None
            if not pending.answered.done():
                pending.answered.set_exception(ReinviteFailed("the session ended"))
        self.endpoint.forget_session(self)
        if self.events is not None:
            self.events.on_ended(self, status, reason, by_remote)
