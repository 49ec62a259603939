"""Focused tests of Headers, Via, SipUri and NameAddr."""

from __future__ import annotations

import pytest

from trunks.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    Via,
    canonical_name,
    check_request,
    parse_message,
)
from trunks.sip.uri import InvalidUri, NameAddr, SipUri, parse_header_params, split_quoted

# -- Headers -----------------------------------------------------------------------------------


def test_headers_case_insensitive_and_compact() -> None:
    headers = Headers([("via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("i", "abc"), ("X-Thing", "1")])
    assert [name for name, _ in headers] == ["Via", "Call-ID", "X-Thing"]
    assert headers.get("VIA") == headers.get("v") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert headers.get("call-id") == "abc"
    assert headers.get("x-thing") == "1"
    assert "CALL-ID" in headers and "i" in headers and "Route" not in headers
    assert headers.get("Route", "none") == "none"
    assert canonical_name("cseq") == "CSeq" and canonical_name("www-authenticate") == (
        "WWW-Authenticate"
    )
    assert canonical_name("X-Custom-thing") == "X-Custom-thing"


def test_headers_set_keeps_position() -> None:
    headers = Headers([("X-A", "1"), ("Route", "r1"), ("X-B", "2"), ("route", "r2"), ("X-C", "3")])
    headers.set("ROUTE", "new")
    assert list(headers) == [("X-A", "1"), ("Route", "new"), ("X-B", "2"), ("X-C", "3")]
    headers.set("X-D", "4")
    assert list(headers)[-1] == ("X-D", "4")


def test_headers_add_first_remove_copy() -> None:
    headers = Headers([("Via", "v2")])
    headers.add("v", "v1", first=True)
    assert headers.get_all("Via") == ["v1", "v2"]
    copy = headers.copy()
    headers.remove("VIA")
    assert headers.get_all("Via") == [] and len(headers) == 0
    assert copy.get_all("Via") == ["v1", "v2"]
    assert copy == Headers([("Via", "v1"), ("via", "v2")])
    assert copy != Headers([("Via", "v1")])


def test_headers_refuse_line_breaks() -> None:
    with pytest.raises(ValueError):
        Headers().add("Subject", "a\r\nInjected: b")
    with pytest.raises(ValueError):
        Headers([("Subject", "x")]).set("Subject", "a\nb")


def test_get_all_splits_list_headers_only() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b;branch=2"),
            ("Via", "SIP/2.0/UDP c;branch=3"),
            ("Contact", '"Doe, Jane" <sip:j@x;p=1,2>, <sip:k@y>;expires="a,b"'),
            ("Route", "<sip:p1;lr>,<sip:p2;lr>"),
            ("Subject", "hello, world"),
            ("Allow", "INVITE,ACK , BYE"),
        ]
    )
    assert headers.get_all("Via") == [
        "SIP/2.0/UDP a;branch=1",
        "SIP/2.0/UDP b;branch=2",
        "SIP/2.0/UDP c;branch=3",
    ]
    assert headers.get_all("m") == ['"Doe, Jane" <sip:j@x;p=1,2>', '<sip:k@y>;expires="a,b"']
    assert headers.get_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert headers.get_all("Subject") == ["hello, world"]
    assert headers.get_all("Allow") == ["INVITE", "ACK", "BYE"]


def test_pop_first_keeps_order() -> None:
    headers = Headers(
        [("Route", "<sip:p1;lr>, <sip:p2;lr>"), ("To", "<sip:x@y>"), ("Route", "<sip:p3;lr>")]
    )
    assert headers.pop_first("route") == "<sip:p1;lr>"
    assert list(headers) == [
        ("Route", "<sip:p2;lr>"),
        ("To", "<sip:x@y>"),
        ("Route", "<sip:p3;lr>"),
    ]
    assert headers.pop_first("Route") == "<sip:p2;lr>"
    assert list(headers) == [("To", "<sip:x@y>"), ("Route", "<sip:p3;lr>")]
    assert headers.pop_first("Route") == "<sip:p3;lr>"
    assert headers.pop_first("Route") is None
    assert list(headers) == [("To", "<sip:x@y>")]


def test_pop_first_non_list_header() -> None:
    headers = Headers([("Subject", "a, b")])
    assert headers.pop_first("Subject") == "a, b"
    assert "Subject" not in headers


def test_split_quoted() -> None:
    assert split_quoted('a, "b,\\"c", <d,e>, f', ",") == ["a", ' "b,\\"c"', " <d,e>", " f"]
    assert split_quoted("a;b", ";") == ["a", "b"]
    assert split_quoted("plain", ",") == ["plain"]


# -- Via ---------------------------------------------------------------------------------------


def test_via_params() -> None:
    via = Via.parse("SIP/2.0/UDP 192.0.2.1:5062;received=198.51.100.7;rport=40000;branch=z9hG4bKa")
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.1", 5062)
    assert via.branch == "z9hG4bKa"
    assert via.received == "198.51.100.7"
    assert via.rport == 40000
    assert Via.parse("SIP/2.0/UDP h;rport;branch=z9hG4bKb").params == {
        "rport": None,
        "branch": "z9hG4bKb",
    }
    assert Via.parse("SIP/2.0/UDP h;rport").rport is None


def test_via_ipv6_and_odd_spacing() -> None:
    via = Via.parse("SIP / 2.0 / UDP  [2001:DB8::1] : 5060 ; branch = z9hG4bKc")
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP",
        "[2001:db8::1]",
        5060,
        "z9hG4bKc",
    )
    assert str(via) == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKc"
    assert Via.parse("sip/2.0/tls\thost.example.com").transport == "TLS"
    assert str(Via.parse(str(via))) == str(via)


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP",
        "SIP/2.0 host",
        "SIP/3.0/UDP host",
        "HTTP/2.0/UDP host",
        "SIP/2.0/UDP host;;branch=1",
        "SIP/2.0/UDP host;branch=1;",
        "SIP/2.0/UDP host:0",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP host junk",
        "SIP/2.0/U<P host",
    ],
)
def test_via_refused(text: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(text)


# -- SipUri ------------------------------------------------------------------------------------


def test_uri_full() -> None:
    uri = SipUri.parse("SIP:Alice:pw%21@Atlanta.COM:5070;Transport=TCP;lr?Subject=hi&X=y")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sip",
        "Alice",
        "pw%21",
        "atlanta.com",
        5070,
    )
    assert uri.params == {"transport": "TCP", "lr": None}
    assert uri.headers == "Subject=hi&X=y"
    assert uri.transport == "tcp"
    assert str(uri) == "sip:Alice:pw%21@atlanta.com:5070;transport=TCP;lr?Subject=hi&X=y"
    assert SipUri.parse(str(uri)) == uri


def test_uri_user_with_params() -> None:
    uri = SipUri.parse("sip:+1-212-555-1212;isub=1411;postd=pp22@gw.example.com;user=phone")
    assert uri.user == "+1-212-555-1212;isub=1411;postd=pp22"
    assert uri.params == {"user": "phone"}
    assert str(uri) == "sip:+1-212-555-1212;isub=1411;postd=pp22@gw.example.com;user=phone"


def test_uri_ipv6() -> None:
    uri = SipUri.parse("sip:bob@[2001:DB8::A]:5080")
    assert uri.host == "[2001:db8::a]" and uri.port == 5080
    assert uri.address() == ("2001:db8::a", 5080)
    assert str(uri) == "sip:bob@[2001:db8::a]:5080"
    assert SipUri.parse("sips:[::1]").address() == ("::1", 5061)


def test_uri_default_ports_and_transport() -> None:
    assert SipUri.parse("sip:h").address() == ("h", 5060)
    assert SipUri.parse("sip:h").address(5080) == ("h", 5080)
    assert SipUri.parse("sips:h").address() == ("h", 5061)
    assert SipUri.parse("sip:h;transport=tls").address() == ("h", 5061)
    assert SipUri.parse("sip:h:7000;transport=tls").address() == ("h", 7000)
    assert SipUri.parse("sip:h").transport == "udp"
    assert SipUri.parse("sip:h;transport=TCP").transport == "tcp"
    assert SipUri.parse("sips:h").transport == "tls"
    assert SipUri.parse("sips:h;transport=tcp").transport == "tls"
    assert SipUri.parse("SIPS:h").scheme == "sips"


def test_uri_tel_and_opaque() -> None:
    tel = SipUri.parse("tel:+1-201-555-0123;phone-context=example.com")
    assert (tel.scheme, tel.user, tel.host) == ("tel", "+1-201-555-0123", "")
    assert str(tel) == "tel:+1-201-555-0123;phone-context=example.com"
    urn = SipUri.parse("urn:service:sos")
    assert (urn.scheme, urn.opaque, urn.is_sip) == ("urn", "service:sos", False)
    assert str(urn) == "urn:service:sos"
    with pytest.raises(InvalidUri):
        urn.address()
    with pytest.raises(InvalidUri):
        tel.address()


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:@host",
        "sip:user@",
        "sip:user@host:",
        "sip:user@host:65536",
        "sip:user@host:port",
        "sip:us er@host",
        "sip:us<er@host",
        "sip:user@ho st",
        "sip:user@host;;lr",
        "sip:user@host;lr;",
        "sip:user@host?",
        "sip:user@host?x<y",
        "sip:user@300.1.1.1",
        "sip:user@[2001:db8::1",
        "sip:user@[2001:db8::g]",
        "sip:user@2001:db8::1",
        "sip:%4@host",
        "sip:user:p@ss@host",
        "tel:",
        "tel:+1 555",
        "no-colon",
        "1sip:host",
        "x y:z",
    ],
)
def test_uri_refused(text: str) -> None:
    with pytest.raises(InvalidUri):
        SipUri.parse(text)


# -- NameAddr ----------------------------------------------------------------------------------


def test_name_addr_quoted_display() -> None:
    addr = NameAddr.parse('"A \\"quoted\\" \\\\ name, <x>" <sip:a@example.com>;tag=1;X=Y')
    assert addr.display_name == 'A "quoted" \\ name, <x>'
    assert addr.tag == "1" and addr.params == {"tag": "1", "x": "Y"}
    assert str(addr) == '"A \\"quoted\\" \\\\ name, <x>" <sip:a@example.com>;tag=1;x=Y'
    assert NameAddr.parse(str(addr)) == addr


def test_name_addr_forms() -> None:
    bare = NameAddr.parse("<sip:a@example.com>")
    assert bare.display_name is None and bare.tag is None
    token = NameAddr.parse("Joe  Smith <sip:a@example.com>")
    assert token.display_name == "Joe Smith"
    spec = NameAddr.parse("sip:a@example.com;user=phone;tag=9")
    assert spec.uri.params == {} and spec.params == {"user": "phone", "tag": "9"}
    spaced = NameAddr.parse("sip:a@example.com ; tag = 9")
    assert spaced.tag == "9"
    empty = NameAddr.parse('"" <sip:a@example.com>')
    assert empty.display_name is None
    assert str(NameAddr.parse('"x"<sip:a@b>')) == '"x" <sip:a@b>'


def test_name_addr_wildcard() -> None:
    star = NameAddr.parse(" * ")
    assert star.wildcard and str(star) == "*"


def test_name_addr_quoted_param_value() -> None:
    addr = NameAddr.parse('<sip:a@b>;+sip.instance="<urn:uuid:f81d;4fae>";expires=60')
    assert addr.params == {"+sip.instance": '"<urn:uuid:f81d;4fae>"', "expires": "60"}


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:a@b>',
        '"quoted" sip:a@b',
        "<sip:a@b",
        "< sip:a@b>",
        "<sip:a @b>",
        "Bell, Alexander <sip:a@b>",
        "Dr. J@ne <sip:a@b>",
        "<sip:a@b> junk",
        "<sip:a@b>;;tag=1",
        "<sip:a@b>;tag=1;",
        "<sip:a@b>;tag=a b",
        '<sip:a@b>;x="unterminated',
        "sip:a@b?Route=x",
        "sip:a@b c",
        "",
    ],
)
def test_name_addr_refused(text: str) -> None:
    with pytest.raises(InvalidUri):
        NameAddr.parse(text)


def test_header_params() -> None:
    assert parse_header_params("") == {}
    assert parse_header_params(" ;A=1 ; b ;c=[2001:db8::1]") == {
        "a": "1",
        "b": None,
        "c": "[2001:db8::1]",
    }
    with pytest.raises(InvalidUri):
        parse_header_params("a=1")


# -- messages ----------------------------------------------------------------------------------


def test_build_and_serialize() -> None:
    headers = Headers(
        [
            ("v", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
            ("f", "<sip:a@b>;tag=1"),
            ("t", "<sip:c@d>"),
            ("i", "x@y"),
            ("CSeq", "1 MESSAGE"),
            ("l", "999"),
        ]
    )
    request = SipRequest(headers, b"hello", "MESSAGE", SipUri.parse("sip:c@d"))
    wire = bytes(request)
    assert wire.startswith(b"MESSAGE sip:c@d SIP/2.0\r\nVia: SIP/2.0/UDP")
    assert b"Content-Length: 5\r\n\r\nhello" in wire and b"999" not in wire
    parsed = parse_message(wire)
    assert isinstance(parsed, SipRequest)
    check_request(parsed)
    response = SipResponse(parsed.headers.copy(), b"", 202, "Accepted")
    assert bytes(response).startswith(b"SIP/2.0 202 Accepted\r\n")


def test_cseq_and_max_forwards() -> None:
    message = parse_message(
        b"OPTIONS sip:a@b SIP/2.0\r\nCSeq:\t12\t OPTIONS \r\nMax-Forwards: 007\r\n\r\n"
    )
    assert message.cseq == (12, "OPTIONS")
    assert message.max_forwards == 7
    for bad in (b"x OPTIONS", b"1", b"1 OPTIONS extra", b"+1 OPTIONS", b"1_0 OPTIONS"):
        message = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: " + bad + b"\r\n\r\n")
        with pytest.raises(SipParseError):
            message.cseq  # noqa: B018


def test_ack_cseq_may_say_invite() -> None:
    raw = (
        b"ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=2\r\n"
        b"From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(raw)
    assert isinstance(message, SipRequest)
    check_request(message)


def test_empty_and_keepalive() -> None:
    for raw in (b"", b"\r\n\r\n", b"\r\n"):
        with pytest.raises(SipParseError):
            parse_message(raw)
