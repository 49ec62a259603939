"""The registrar's bindings (RFC 3261 §10.3): several contacts, refresh, removal one by one or
all at once, the minimum interval, and out-of-order REGISTERs; authentication is stubbed."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from trunks.sip.message import SipRequest, SipResponse, parse_message
from trunks.sip.registrar import MAX_EXPIRES, LocationService, Registrar
from trunks.sip.transaction import response_to
from trunks.sip.transport import Peer

PHONE = Peer("UDP", "127.0.0.1", 5070)


@dataclass
class Transaction:
    """What the registrar uses of a server transaction: the request's source and respond()."""

    request: SipRequest
    source: Peer = PHONE
    to_tag: str = "t1"
    responses: list[SipResponse] = field(default_factory=list)

    def respond(self, response: SipResponse) -> None:
        self.responses.append(response)

    def reply(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        response = response_to(self.request, status, reason, self.to_tag)
        for name, value in (headers or {}).items():
            response.headers.add(name, value)
        self.responses.append(response)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def register(
    cseq: int,
    contacts: list[str],
    expires: str | None = None,
    user: str = "alice",
    call_id: str = "reg-1",
) -> SipRequest:
    lines = [
        "REGISTER sip:127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK" + str(cseq),
        f"From: <sip:{user}@127.0.0.1>;tag=f1",
        f"To: <sip:{user}@127.0.0.1>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "Max-Forwards: 70",
        *[f"Contact: {c}" for c in contacts],
        *([f"Expires: {expires}"] if expires is not None else []),
        "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, SipRequest)
    return message


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registrar(clock: Clock) -> Registrar:
    return Registrar(lambda request, _tx: "alice", LocationService(clock), clock)


def handle(registrar: Registrar, request: SipRequest) -> SipResponse:
    transaction = Transaction(request)
    registrar.handle(request, transaction)  # type: ignore[arg-type]
    (response,) = transaction.responses
    return response


def bound(registrar: Registrar) -> list[str]:
    return sorted(str(b.contact.uri) for b in registrar.location.lookup("alice"))


def test_several_contacts_then_refresh_and_removal(registrar: Registrar, clock: Clock):
    ok = handle(
        registrar,
        register(1, ["<sip:alice@10.0.0.1:5060>", "<sip:alice@10.0.0.2:5060>;expires=120"]),
    )
    assert ok.status == 200
    assert sorted(ok.headers.get_all("Contact")) == [
        "<sip:alice@10.0.0.1:5060>;expires=3600", "<sip:alice@10.0.0.2:5060>;expires=120"
    ]  # fmt: skip
    clock.now += 121  # the second binding expires; the first stays
    assert bound(registrar) == ["sip:alice@10.0.0.1:5060"]
    handle(registrar, register(2, ["<sip:alice@10.0.0.2:5060>"], expires="600"))
    assert bound(registrar) == ["sip:alice@10.0.0.1:5060", "sip:alice@10.0.0.2:5060"]
    removed = handle(registrar, register(3, ["<sip:alice@10.0.0.1:5060>;expires=0"]))
    assert removed.headers.get_all("Contact") == ["<sip:alice@10.0.0.2:5060>;expires=600"]
    handle(registrar, register(4, ["*"], expires="0"))
    assert bound(registrar) == []


def test_expiry_is_capped_and_too_short_is_refused(registrar: Registrar):
    ok = handle(registrar, register(1, ["<sip:alice@10.0.0.1>"], expires="999999"))
    assert ok.headers.get_all("Contact") == [f"<sip:alice@10.0.0.1>;expires={MAX_EXPIRES}"]
    brief = handle(registrar, register(2, ["<sip:alice@10.0.0.1>"], expires="10"))
    assert (brief.status, brief.headers.get("Min-Expires")) == (423, "60")


def test_out_of_order_and_bad_requests(registrar: Registrar):
    handle(registrar, register(5, ["<sip:alice@10.0.0.1>"]))
    assert handle(registrar, register(4, ["<sip:alice@10.0.0.1>"])).status == 500
    assert handle(registrar, register(6, ["*"])).status == 400  # a wildcard needs Expires: 0
    assert handle(registrar, register(7, ["*", "<sip:alice@10.0.0.1>"], expires="0")).status == 400
    assert handle(registrar, register(8, ["<sip:alice@10.0.0.1>"], expires="soon")).status == 400
    other = handle(registrar, register(9, ["<sip:bob@10.0.0.9>"], user="bob"))
    assert other.status == 403  # authenticated as alice, registering bob
    assert bound(registrar) == ["sip:alice@10.0.0.1"]


def test_a_query_lists_the_bindings_without_changing_them(registrar: Registrar):
    handle(registrar, register(1, ["<sip:alice@10.0.0.1>"]))
    query = handle(registrar, register(2, []))
    assert query.status == 200 and query.headers.get_all("Contact") == [
        "<sip:alice@10.0.0.1>;expires=3600"
    ]
