"""The UA core (RFC 3261 §8): one SIP endpoint's transports, transactions, dialogs and sessions,
and the first answer to every request: errors for what is malformed or unknown, dialogs for
what belongs to one, the registrar and the call handler for the rest.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from trunks.sip.message import (
    COMPACT,
    Headers,
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    Via,
    check_request,
)
from trunks.sip.session import InviteSession
from trunks.sip.transaction import ServerTransaction, TransactionLayer, new_branch
from trunks.sip.transport import Peer, TransportLayer
from trunks.sip.uri import SipUri

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REGISTER"
# Methods we know of but do not serve outside a dialog: 405 with Allow, not 501.
KNOWN_METHODS = frozenset(
    {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK",
     "SUBSCRIBE", "NOTIFY", "MESSAGE", "REFER", "PUBLISH"}
)  # fmt: skip
IN_DIALOG_ONLY = frozenset({"BYE", "INFO", "UPDATE", "PRACK", "NOTIFY"})

InviteHandler = Callable[[InviteSession, SipRequest, Peer], None]
RequestHandler = Callable[[SipRequest, ServerTransaction], None]


@dataclass(frozen=True)
class Listener:
    transport: str
    host: str
    port: int
    tls: ssl.SSLContext | None = None


class SipEndpoint:
    def __init__(self, user_agent: str = "voice-gateway") -> None:
        self.user_agent = user_agent
        self.allow = ALLOW
        self.loop = asyncio.get_event_loop()
        self.transport = TransportLayer(self._on_message, self._on_invalid)
        self.transactions = TransactionLayer(self.transport, self)
        self.on_invite: InviteHandler | None = None
        self.on_register: RequestHandler | None = None
        self._dialogs: dict[tuple[str, str, str], InviteSession] = {}
        self._by_invite: dict[tuple[str, ...], InviteSession] = {}
        self._sessions: set[InviteSession] = set()

    async def start(self, listeners: list[Listener]) -> None:
        self.loop = asyncio.get_running_loop()
        self.transactions.loop = self.loop
        for listener in listeners:
            await self.transport.listen(
                listener.transport, listener.host, listener.port, listener.tls
            )

    async def close(self) -> None:
        for session in list(self._sessions):
            session.bye()
        self.transactions.close()
        await self.transport.close()

    # -- addresses ------------------------------------------------------------------------

    def address(self, transport: str) -> tuple[str, int]:
        return self.transport.addresses.get(transport) or next(
            iter(self.transport.addresses.values())
        )

    def via(self, transport: str) -> Via:
        host, port = self.address(transport)
        return Via(transport, _host_for_uri(host), port, {"branch": new_branch(), "rport": None})

    def contact_for(self, transport: str) -> str:
        host, port = self.address(transport)
        scheme = "sips" if transport == "TLS" else "sip"
        param = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<{scheme}:gateway@{_host_for_uri(host)}:{port}{param}>"

    def new_call_id(self) -> str:
        host, _ = self.address("UDP")
        return f"{secrets.token_hex(12)}@{_host_for_uri(host)}"

    def send_request(
        self,
        method: str,
        uri: SipUri,
        peer: Peer,
        on_response: Callable[[SipResponse], None],
        on_failure: Callable[[int, str], None],
        *,
        from_uri: str | None = None,
        to_uri: str | None = None,
        call_id: str | None = None,
        cseq: int = 1,
        from_tag: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SipRequest:
        """An out-of-dialog request (OPTIONS keepalive, REGISTER to a carrier)."""
        host, port = self.address(peer.transport)
        message = Headers()
        message.add("Via", str(self.via(peer.transport)))
        message.add("Max-Forwards", "70")
        from_uri = from_uri or f"sip:gateway@{_host_for_uri(host)}:{port}"
        message.add("From", f"<{from_uri}>;tag={from_tag or secrets.token_hex(6)}")
        message.add("To", f"<{to_uri or uri}>")
        message.add("Call-ID", call_id or self.new_call_id())
        message.add("CSeq", f"{cseq} {method}")
        message.add("Contact", self.contact_for(peer.transport))
        message.add("User-Agent", self.user_agent)
        for name, value in (headers or {}).items():
            message.add(name, value)
        request = SipRequest(message, b"", method, uri)
        self.transactions.send_request(request, peer, on_response, on_failure)
        return request

    # -- session registry -----------------------------------------------------------------

    def register_session(self, session: InviteSession) -> None:
        self._sessions.add(session)

    def register_dialog(self, session: InviteSession) -> None:
        assert session.dialog is not None
        self._dialogs[session.dialog.key] = session
        self._sessions.add(session)

    def forget_session(self, session: InviteSession) -> None:
        self._sessions.discard(session)
        if session.dialog is not None:
            self._dialogs.pop(session.dialog.key, None)
        if session.server is not None:
            self._by_invite.pop(session.server.key, None)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    # -- the transaction user -------------------------------------------------------------

    def on_request(self, request: SipRequest, transaction: ServerTransaction) -> None:
        try:
            check_request(request)
        except SipParseError as error:
            status = error.status if error.status in STATUS_PHRASES else 400
            transaction.reply(status, STATUS_PHRASES[status], {"Warning": _warning(error.reason)})
            return
        max_forwards = request.headers.get("Max-Forwards")
        if max_forwards is not None and int(max_forwards) == 0 and request.method != "OPTIONS":
            transaction.reply(483, "Too Many Hops")
            return
        if self._is_loop(request):
            transaction.reply(482, "Loop Detected")
            return
        if request.to.tag:
            self._in_dialog(request, transaction)
            return
        method = request.method
        if method == "INVITE":
            self._new_invite(request, transaction)
        elif method == "CANCEL":
            self._cancel(request, transaction)
        elif method == "REGISTER" and self.on_register is not None:
            self.on_register(request, transaction)
        elif method == "OPTIONS":
            transaction.reply(200, "OK", {"Allow": self.allow, "Accept": "application/sdp"})
        elif method in IN_DIALOG_ONLY:
            transaction.reply(481, "Call/Transaction Does Not Exist")
        elif method in KNOWN_METHODS:
            transaction.reply(405, "Method Not Allowed", {"Allow": self.allow})
        else:
            transaction.reply(501, "Not Implemented", {"Allow": self.allow})

    def on_ack(self, ack: SipRequest, peer: Peer) -> None:
        session = self._dialogs.get((ack.call_id, ack.to.tag or "", ack.from_.tag or ""))
        if session is not None:
            session.receive_ack(ack)

    def on_stray_response(self, response: SipResponse, peer: Peer) -> None:
        if 200 <= response.status < 300 and response.cseq[1] == "INVITE":
            key = (response.call_id, response.from_.tag or "", response.to.tag or "")
            session = self._dialogs.get(key)
            if session is not None:
                session.receive_stray_2xx(response)

    def _in_dialog(self, request: SipRequest, transaction: ServerTransaction) -> None:
        key = (request.call_id, request.to.tag or "", request.from_.tag or "")
        session = self._dialogs.get(key)
        if session is None:
            transaction.reply(481, "Call/Transaction Does Not Exist")
            return
        session.receive_in_dialog(request, transaction)

    def _new_invite(self, request: SipRequest, transaction: ServerTransaction) -> None:
        if self.on_invite is None:
            transaction.reply(480, "Temporarily Unavailable")
            return
        session = InviteSession(self)
        session.receive_invite(request, transaction)
        self._by_invite[transaction.key] = session
        self._sessions.add(session)
        try:
            self.on_invite(session, request, transaction.source)
        except Exception:
            log.exception("INVITE handler failed for call %s", request.call_id)
            session.reject(500, "Server Internal Error")

    def _cancel(self, cancel: SipRequest, transaction: ServerTransaction) -> None:
        invite = self.transactions.invite_transaction_for(cancel)
        session = self._by_invite.get(invite.key) if invite is not None else None
        if session is None:
            transaction.reply(481, "Call/Transaction Does Not Exist")
            return
        transaction.reply(200, "OK")
        session.receive_cancel()

    def _is_loop(self, request: SipRequest) -> bool:
        """Our own request come back to us: one of its Vias has a branch of ours, still live."""
        return any(self.transactions.is_ours(via.branch) for via in request.vias)

    # -- the transport user ---------------------------------------------------------------

    def _on_message(self, message: SipMessage, peer: Peer) -> None:
        try:
            self.transactions.handle(message, peer)
        except (SipParseError, ValueError) as error:
            if isinstance(message, SipRequest) and message.method != "ACK":
                parse_error = (
                    error if isinstance(error, SipParseError) else SipParseError(str(error))
                )
                self._salvage_reply(message.serialize(), peer, parse_error)
            else:
                log.debug("dropped a malformed message from %s: %s", peer, error)

    def _on_invalid(self, data: bytes, peer: Peer, error: SipParseError) -> None:
        log.info("malformed message from %s:%s: %s", peer.host, peer.port, error.reason)
        self._salvage_reply(data, peer, error)

    def _salvage_reply(self, data: bytes, peer: Peer, error: SipParseError) -> None:
        """Answer 400 (513 if too large) when the message has enough to address a response."""
        response = salvage_error_response(data, error)
        if response is None:
            return
        try:
            self.transport.send(response, peer)
        except OSError as error:
            log.debug("could not answer a malformed message: %s", error)


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _warning(reason: str) -> str:
    text = reason.replace('"', "'")[:120]
    return f'399 gateway "{text}"'


STATUS_PHRASES = {
    400: "Bad Request",
    416: "Unsupported URI Scheme",
    505: "Version Not Supported",
    513: "Message Too Large",
}


def salvage_error_response(data: bytes, error: SipParseError) -> SipResponse | None:
    """A 400 for a request we could not parse, built from the header lines that do parse."""
    text = data[:16384].decode("utf-8", "replace")
    head = text.replace("\r\n", "\n").split("\n\n", 1)[0].split("\n")
    if not head or head[0].upper().startswith("SIP/") or head[0].split(" ")[0].upper() == "ACK":
        return None  # never answer a response or an ACK
    wanted = {"via": [], "from": [], "to": [], "call-id": [], "cseq": []}
    for line in head[1:]:
        name, colon, value = line.partition(":")
        key = COMPACT.get(name.strip().lower(), name.strip()).lower()
        if colon and key in wanted:
            wanted[key].append(value.strip())
    if not all(wanted.values()):
        return None
    headers = Headers()
    for value in wanted["via"]:
        headers.add("Via", value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        headers.add(name, wanted[name.lower()][0])
    headers.add("Warning", _warning(error.reason))
    status = error.status if error.status in STATUS_PHRASES else 400
    return SipResponse(headers, b"", status, STATUS_PHRASES[status])
