"""SIP dialogs (RFC 3261 §12): identifiers, route set, CSeq, and building requests inside one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from trunks.sip.message import Headers, SipRequest, SipResponse, Via
from trunks.sip.transaction import new_branch
from trunks.sip.transport import Peer
from trunks.sip.uri import NameAddr, SipUri


def new_tag() -> str:
    return secrets.token_hex(6)


def peer_for(uri: SipUri, default_transport: str = "UDP") -> Peer:
    """Where a request to ``uri`` goes: its host and port, its transport parameter."""
    host, port = uri.address()
    transport = uri.params.get("transport")
    name = (transport or ("TLS" if uri.scheme == "sips" else default_transport)).upper()
    return Peer(name, host, port)


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # the From (UAC) or To (UAS) value without its tag
    remote_uri: str
    remote_target: SipUri
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 0
    remote_cseq: int | None = None
    contact: str = ""  # our Contact URI, in <>
    transport: str = "UDP"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, request: SipRequest, local_tag: str, contact: str, transport: str) -> Dialog:
        """§12.1.1: the dialog a UAS makes when it answers ``request`` with a tagged response."""
        remote = request.from_
        target = request.contacts[0].uri if request.contacts else remote.uri
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag or "",
            local_uri=_untagged(request.headers.get("To") or ""),
            remote_uri=_untagged(request.headers.get("From") or ""),
            remote_target=target,
            route_set=request.headers.get_all("Record-Route"),
            remote_cseq=request.cseq[0],
            contact=contact,
            transport=transport,
        )

    @classmethod
    def as_uac(cls, request: SipRequest, response: SipResponse, transport: str) -> Dialog:
        """§12.1.2: the dialog a UAC makes from a tagged 1xx or 2xx to its INVITE."""
        contacts = response.contacts
        target = contacts[0].uri if contacts else request.uri
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=_untagged(request.headers.get("From") or ""),
            remote_uri=_untagged(request.headers.get("To") or ""),
            remote_target=target,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            local_cseq=request.cseq[0],
            contact=request.headers.get("Contact") or "",
            transport=transport,
        )

    def accepts(self, request: SipRequest) -> bool:
        """§12.2.2: a request with a lower CSeq than the last one is out of order."""
        number = request.cseq[0]
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_cseq is not None and number <= self.remote_cseq:
            return False
        self.remote_cseq = number
        return True

    def next_peer(self) -> Peer:
        """The first hop of a request inside the dialog: the first route, or the target."""
        if self.route_set:
            return peer_for(NameAddr.parse(self.route_set[0]).uri, self.transport)
        return peer_for(self.remote_target, self.transport)

    def request(
        self,
        method: str,
        via_host: str,
        via_port: int,
        body: bytes = b"",
        content_type: str | None = None,
        cseq: int | None = None,
    ) -> SipRequest:
        """§12.2.1.1: a request inside the dialog (loose routing only)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        headers = Headers()
        via = Via(self.transport, via_host, via_port, {"branch": new_branch(), "rport": None})
        headers.add("Via", str(via))
        headers.add("Max-Forwards", "70")
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("From", f"{self.local_uri};tag={self.local_tag}")
        headers.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        if self.contact:
            headers.add("Contact", self.contact)
        if content_type:
            headers.add("Content-Type", content_type)
        return SipRequest(headers, body, method, self.remote_target)


def _untagged(value: str) -> str:
    """The header value without its tag parameter (it is added back per request)."""
    address = NameAddr.parse(value)
    address.params.pop("tag", None)
    return str(address)
