"""SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state): retransmissions, timeouts
and matching, so that the layer above sees each request and each response once.

Every timer is a ``loop.call_later`` handle on the transaction: no task per transaction, so a
busy endpoint costs timers, not coroutines.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from enum import Enum
from typing import Protocol

from trunks.sip.message import Headers, SipMessage, SipRequest, SipResponse, Via
from trunks.sip.transport import Peer, TransportLayer

log = logging.getLogger(__name__)

T1 = 0.5  # RTT estimate
T2 = 4.0  # longest retransmit interval for non-INVITE requests and INVITE responses
T4 = 5.0  # longest time a message stays in the network
MAGIC_COOKIE = "z9hG4bK"


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(10)


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class TransactionUser(Protocol):
    """The layer above: the UA core, which creates dialogs and sessions."""

    def on_request(self, request: SipRequest, transaction: ServerTransaction) -> None: ...

    def on_ack(self, ack: SipRequest, peer: Peer) -> None:
        """An ACK that matches no transaction: the ACK of a 2xx, for the dialog."""

    def on_stray_response(self, response: SipResponse, peer: Peer) -> None:
        """A response that matches no transaction: a retransmitted 2xx, for the dialog."""


def response_to(
    request: SipRequest, status: int, reason: str, to_tag: str | None = None
) -> SipResponse:
    """A response with the headers §8.2.6.2 copies from the request."""
    headers = Headers()
    for value in request.headers.get_all("Via"):
        headers.add("Via", value)
    to = request.headers.get("To") or ""
    if to_tag and ";tag=" not in to.replace(" ", "").lower():
        to = f"{to};tag={to_tag}"
    headers.add("From", request.headers.get("From") or "")
    headers.add("To", to)
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", request.headers.get("CSeq") or "")
    if 100 < status < 300:
        for value in request.headers.get_all("Record-Route"):
            headers.add("Record-Route", value)
    return SipResponse(headers, b"", status, reason)


def response_destination(request: SipRequest, source: Peer) -> Peer:
    """§18.2.2 with RFC 3581: where a response to ``request`` goes."""
    if source.reliable:
        return source
    via = request.top_via
    host = via.params.get("received") or via.host.strip("[]")
    rport = via.params.get("rport")
    port = int(rport) if rport else (via.port or 5060)
    return Peer(source.transport, host, port)


def _server_key(request: SipRequest) -> tuple[str, ...]:
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return (branch, f"{via.host}:{via.port or ''}", method)
    # RFC 2543 peers: no usable branch, so match on the dialog and sequence identifiers.
    return (request.call_id, request.from_.tag or "", str(request.cseq[0]), str(via), method)


class _Transaction:
    def __init__(self, layer: TransactionLayer, peer: Peer) -> None:
        self.layer = layer
        self.peer = peer
        self.state = State.TRYING
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def _start_timer(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self._stop_timer(name)
        self._timers[name] = self.layer.loop.call_later(delay, callback)

    def _stop_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.layer.forget(self)

    def _send(
        self, message: SipMessage, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        try:
            self.layer.transport.send(message, self.peer, on_error)
        except OSError as error:
            if on_error is not None:
                on_error(error)


class ClientTransaction(_Transaction):
    """Sends one request and reports its responses; ``on_response`` sees 1xx and the final."""

    def __init__(
        self,
        layer: TransactionLayer,
        request: SipRequest,
        peer: Peer,
        on_response: Callable[[SipResponse], None],
        on_failure: Callable[[int, str], None],
    ) -> None:
        super().__init__(layer, peer)
        self.request = request
        self.on_response = on_response
        self.on_failure = on_failure
        self.is_invite = request.method == "INVITE"
        self.key = (request.top_via.branch or "", request.method)
        self._interval = T1
        self._ack: SipRequest | None = None

    def start(self) -> None:
        self.state = State.CALLING if self.is_invite else State.TRYING
        self._send(self.request, self._transport_error)
        if not self.peer.reliable:
            self._start_timer("retransmit", T1, self._retransmit)
        self._start_timer("timeout", 64 * T1, self._timeout)

    def _retransmit(self) -> None:
        if self.state not in (State.CALLING, State.TRYING, State.PROCEEDING):
            return
        if self.is_invite and self.state is State.PROCEEDING:
            return
        self._send(self.request)
        self._interval = self._interval * 2 if self.is_invite else min(self._interval * 2, T2)
        if self.state is State.PROCEEDING:  # non-INVITE: keep going at T2
            self._interval = T2
        self._start_timer("retransmit", self._interval, self._retransmit)

    def _timeout(self) -> None:
        if self.state in (State.CALLING, State.TRYING, State.PROCEEDING):
            self._terminate()
            self.on_failure(408, "Request Timeout")

    def _transport_error(self, error: Exception) -> None:
        if self.state is not State.TERMINATED:
            self._terminate()
            self.on_failure(503, f"Service Unavailable ({type(error).__name__})")

    def receive(self, response: SipResponse) -> None:
        status = response.status
        if self.state is State.TERMINATED:
            return
        if status < 200:
            if self.state in (State.CALLING, State.TRYING):
                self.state = State.PROCEEDING
                if self.is_invite:
                    self._stop_timer("retransmit")
            if self.state is State.PROCEEDING:
                self.on_response(response)
            return
        if self.is_invite:
            self._invite_final(response)
        elif self.state in (State.TRYING, State.PROCEEDING):
            self.state = State.COMPLETED
            self._stop_timer("retransmit")
            self._stop_timer("timeout")
            self.on_response(response)
            self._start_timer("K", 0 if self.peer.reliable else T4, self._terminate)

    def _invite_final(self, response: SipResponse) -> None:
        if response.status < 300:
            # RFC 6026 Accepted: further 2xx retransmissions go to the TU, which ACKs them.
            if self.state in (State.CALLING, State.PROCEEDING):
                self.state = State.ACCEPTED
                self._stop_timer("retransmit")
                self._stop_timer("timeout")
                self._start_timer("M", 64 * T1, self._terminate)
            if self.state is State.ACCEPTED:
                self.on_response(response)
            return
        if self.state in (State.CALLING, State.PROCEEDING):
            self.state = State.COMPLETED
            self._stop_timer("retransmit")
            self._stop_timer("timeout")
            self._ack = self._build_ack(response)
            self._send(self._ack)
            self.on_response(response)
            self._start_timer("D", 0 if self.peer.reliable else 32.0, self._terminate)
        elif self.state is State.COMPLETED and self._ack is not None:
            self._send(self._ack)  # the final response was retransmitted: our ACK was lost

    def _build_ack(self, response: SipResponse) -> SipRequest:
        """§17.1.1.3: the ACK of a non-2xx final response, part of this transaction."""
        headers = Headers()
        headers.add("Via", self.request.headers.get_all("Via")[0])
        for value in self.request.headers.get_all("Route"):
            headers.add("Route", value)
        headers.add("Max-Forwards", "70")
        headers.add("From", self.request.headers.get("From") or "")
        headers.add("To", response.headers.get("To") or "")
        headers.add("Call-ID", self.request.call_id)
        headers.add("CSeq", f"{self.request.cseq[0]} ACK")
        return SipRequest(headers, b"", "ACK", self.request.uri)


class ServerTransaction(_Transaction):
    """Receives one request; the TU answers it with :meth:`respond`."""

    def __init__(self, layer: TransactionLayer, request: SipRequest, peer: Peer) -> None:
        super().__init__(layer, peer)
        self.request = request
        self.source = peer
        self.peer = response_destination(request, peer)
        self.is_invite = request.method == "INVITE"
        self.key = _server_key(request)
        self.state = State.PROCEEDING if self.is_invite else State.TRYING
        self.last_response: SipResponse | None = None
        self.to_tag = secrets.token_hex(6)
        self._interval = T1
        self.cancelled = False

    def respond(self, response: SipResponse) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            log.debug("late response %s to %s ignored", response.status, self.request.method)
            return
        self.last_response = response
        self._send(response)
        if response.status < 200:
            self.state = State.PROCEEDING
            return
        if not self.is_invite:
            self.state = State.COMPLETED
            self._start_timer("J", 0 if self.peer.reliable else 64 * T1, self._terminate)
        elif response.status < 300:
            self.state = State.ACCEPTED  # the UAS core retransmits the 2xx until its ACK
            self._start_timer("L", 64 * T1, self._terminate)
        else:
            self.state = State.COMPLETED
            if not self.peer.reliable:
                self._start_timer("G", T1, self._retransmit_final)
            self._start_timer("H", 64 * T1, self._terminate)

    def reply(self, status: int, reason: str, headers: dict[str, str] | None = None) -> SipResponse:
        """Answer with a bare response (errors, 100 Trying, 200 to OPTIONS...)."""
        response = response_to(self.request, status, reason, self.to_tag if status > 100 else None)
        for name, value in (headers or {}).items():
            response.headers.add(name, value)
        self.respond(response)
        return response

    def _retransmit_final(self) -> None:
        if self.state is State.COMPLETED and self.last_response is not None:
            self._send(self.last_response)
            self._interval = min(self._interval * 2, T2)
            self._start_timer("G", self._interval, self._retransmit_final)

    def receive(self, request: SipRequest) -> None:
        """A retransmission of the request, or the ACK of our non-2xx final response."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._stop_timer("G")
                self._stop_timer("H")
                self._start_timer("I", 0 if self.peer.reliable else T4, self._terminate)
            return
        if self.last_response is not None and self.state in (
            State.PROCEEDING,
            State.COMPLETED,
        ):
            self._send(self.last_response)


class TransactionLayer:
    def __init__(self, transport: TransportLayer, user: TransactionUser) -> None:
        self.transport = transport
        self.user = user
        self.loop = asyncio.get_event_loop()
        self._clients: dict[tuple[str, ...], ClientTransaction] = {}
        self._servers: dict[tuple[str, ...], ServerTransaction] = {}
        self._branches: set[str] = set()

    def send_request(
        self,
        request: SipRequest,
        peer: Peer,
        on_response: Callable[[SipResponse], None],
        on_failure: Callable[[int, str], None],
    ) -> ClientTransaction:
        transaction = ClientTransaction(self, request, peer, on_response, on_failure)
        self._clients[transaction.key] = transaction
        self._branches.add(transaction.key[0])
        transaction.start()
        return transaction

    def handle(self, message: SipMessage, peer: Peer) -> None:
        if isinstance(message, SipResponse):
            self._response(message, peer)
        else:
            assert isinstance(message, SipRequest)
            self._request(message, peer)

    def _response(self, response: SipResponse, peer: Peer) -> None:
        vias = response.headers.get_all("Via")
        if not vias:
            return
        try:
            key = (Via.parse(vias[0]).branch or "", response.cseq[1])
        except ValueError:
            log.debug("response with a bad Via or CSeq dropped")
            return
        transaction = self._clients.get(key)
        if transaction is not None:
            transaction.receive(response)
        else:
            self.user.on_stray_response(response, peer)

    def _request(self, request: SipRequest, peer: Peer) -> None:
        key = _server_key(request)
        transaction = self._servers.get(key)
        if request.method == "ACK":
            if transaction is not None and transaction.state is not State.ACCEPTED:
                transaction.receive(request)
            else:
                self.user.on_ack(request, peer)
            return
        if transaction is not None:
            transaction.receive(request)
            return
        transaction = ServerTransaction(self, request, peer)
        self._servers[key] = transaction
        if transaction.is_invite:
            transaction.reply(100, "Trying")
        self.user.on_request(request, transaction)

    def invite_transaction_for(self, cancel: SipRequest) -> ServerTransaction | None:
        """The INVITE a CANCEL cancels: same branch and sent-by (§9.2)."""
        key = _server_key(cancel)
        return self._servers.get((*key[:-1], "INVITE"))

    def forget(self, transaction: _Transaction) -> None:
        if isinstance(transaction, ClientTransaction):
            if self._clients.get(transaction.key) is transaction:
                del self._clients[transaction.key]
                self._branches.discard(transaction.key[0])
        elif self._servers.get(transaction.key) is transaction:  # type: ignore[attr-defined]
            del self._servers[transaction.key]  # type: ignore[attr-defined]

    def is_ours(self, branch: str | None) -> bool:
        """A branch of one of our live client transactions (a request of ours come back)."""
        return branch in self._branches if branch else False

    @property
    def counts(self) -> tuple[int, int]:
        return len(self._clients), len(self._servers)

    def close(self) -> None:
        for transaction in [*self._clients.values(), *self._servers.values()]:
            transaction._terminate()
