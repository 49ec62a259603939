"""SIP messages (RFC 3261 §7, §20): parse from bytes, build, serialize.

Headers keep their order and their text; names are case-insensitive and compact forms (``v``,
``i``, ``f``...) are expanded. Comma-separated lists (several Via or Contact values on one line)
are split on read by :meth:`Headers.get_all`. The parser is strict about what it must be strict
about and tolerant of what RFC 3261 lets receivers accept. Decisions (tested by
tests/sip/test_torture.py, after the categories of RFC 4475):

* Accepted: folded header lines (joined with one space), bare LF line ends, CRLFs before the
  start line, any case in header names and compact forms, spaces around ':' and '/' in Via,
  unknown methods of any case (``invite`` is a method of its own: 501 is the layer above's
  job), UTF-8 or empty reason phrases, octets after the Content-Length body in a datagram
  (ignored), a datagram without Content-Length (the body is the rest), the same
  Content-Length repeated with the same value.
* Refused (:class:`SipParseError`, ``reason`` for the 400 and ``status`` for the response
  code): a start line that is not exactly ``METHOD SP URI SP SIP/2.0`` (several SP, trailing
  SP, LWS inside the URI, ``<uri>``), another SIP version (505), a Request-URI of a scheme
  other than sip/sips/tel (416), a status code outside 100-699, a header without an empty line
  after it, control characters (NUL...) anywhere in the header, header names that are not
  tokens, a Content-Length that is not digits, larger than the data, or repeated with another
  value, messages over :data:`MAX_MESSAGE_SIZE`. :func:`check_request` adds the mandatory
  headers, single-valued headers given twice, CSeq (digits < 2**31, method = request method),
  Max-Forwards (0-255), and the syntax of Via, From, To and Contact (empty parameters, a URI
  with parameters or headers outside <>, spaces in addr-spec, unquoted non-token display
  names, unterminated quotes).
* Not parsed here: Date (an invalid date is the layer above's business, if any), Expires,
  bodies (multipart bodies are opaque bytes).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from trunks.sip.uri import (
    TOKEN_CHARS,
    InvalidUri,
    NameAddr,
    Params,
    SipUri,
    _split_hostport,
    format_params,
    parse_header_params,
    parse_params,  # noqa: F401 - re-exported, the first version had it here
    split_quoted,
)

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE_SIZE = 65535

COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via",
    "o": "Event", "r": "Refer-To", "b": "Referred-By", "u": "Allow-Events", "x": "Session-Expires",
    "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition", "y": "Identity",
    "n": "Identity-Info",
}  # fmt: skip
_CANONICAL = {
    name.lower(): name
    for name in (
        *COMPACT.values(), "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
        "Authentication-Info", "Authorization", "CSeq", "Call-Info", "Content-Disposition",
        "Content-Language", "Date", "Error-Info", "Expires", "In-Reply-To", "Max-Forwards",
        "MIME-Version", "Min-Expires", "Organization", "Priority", "Proxy-Authenticate",
        "Proxy-Authorization", "Proxy-Require", "RAck", "RSeq", "Record-Route", "Reply-To",
        "Require", "Retry-After", "Route", "Server", "Timestamp", "Unsupported", "User-Agent",
        "Warning", "WWW-Authenticate", "P-Asserted-Identity", "Min-SE", "Path", "Reason",
        "Replaces", "Privacy", "P-Preferred-Identity", "Diversion", "History-Info",
        "Subscription-State", "SIP-ETag", "SIP-If-Match", "Service-Route",
    )
}  # fmt: skip
# lowered name (compact forms too) -> (canonical name, its lowered form)
_NAMES = {lower: (name, name.lower()) for lower, name in _CANONICAL.items()}
_NAMES.update({short: (name, name.lower()) for short, name in COMPACT.items()})
# Headers whose value is a comma-separated list (RFC 3261 §7.3.1); the others are kept whole.
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Via", "Route", "Record-Route", "Contact", "Allow", "Supported", "Require",
        "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
        "Allow-Events", "Content-Encoding", "Content-Language", "In-Reply-To", "Path",
        "Service-Route",
    )
)  # fmt: skip
# Headers a request may carry once only (RFC 3261 §7.3.1, RFC 4475 §3.3.8).
SINGLE_HEADERS = ("To", "From", "Call-ID", "CSeq", "Max-Forwards")
_TOKEN_CHARS = TOKEN_CHARS
# Control characters other than HTAB and LF (CR is gone by then: a bare CR is refused).
_CTL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)


class SipParseError(ValueError):
    """A message that cannot be understood; ``reason`` goes into the response.

    ``status`` is the response code to send back to a request: 400 unless told otherwise
    (505 for another SIP version, 416 for a Request-URI scheme we do not know).
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def canonical_name(name: str) -> str:
    known = _NAMES.get(name.lower())
    return known[0] if known else name


def is_token(text: str) -> bool:
    return bool(text) and _TOKEN_CHARS.issuperset(text)


def _check_value(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"line break in header value {value[:60]!r}")
    return value


class Headers:
    """Ordered, case-insensitive, multi-valued."""

    __slots__ = ("_items", "_keys")

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        self._keys: list[str] = []  # lowered canonical names, parallel to _items
        for name, value in items or ():
            self.add(name, value)

    @classmethod
    def _trusted(cls, items: list[tuple[str, str]], keys: list[str]) -> Headers:
        headers = cls.__new__(cls)
        headers._items, headers._keys = items, keys
        return headers

    @staticmethod
    def _key(name: str) -> str:
        lower = name.lower()
        known = _NAMES.get(lower)
        return known[1] if known else lower

    def get(self, name: str, default: str | None = None) -> str | None:
        try:
            return self._items[self._keys.index(self._key(name))][1]
        except ValueError:
            return default

    def get_all(self, name: str) -> list[str]:
        """Every value, list headers split at commas (outside quotes and brackets)."""
        wanted = self._key(name)
        values: list[str] = []
        split = wanted in LIST_HEADERS
        for index, key in enumerate(self._keys):
            if key == wanted:
                value = self._items[index][1]
                if split and "," in value:
                    values.extend(v.strip(" \t") for v in split_quoted(value, ",") if v.strip())
                else:
                    values.append(value)
        return values

    def count(self, name: str) -> int:
        """How many header lines (not list elements) carry ``name``."""
        wanted = self._key(name)
        return self._keys.count(wanted)

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        item = (canonical_name(name), _check_value(value))
        key = self._key(name)
        if first:
            self._items.insert(0, item)
            self._keys.insert(0, key)
        else:
            self._items.append(item)
            self._keys.append(key)

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` by one, where the first one stood."""
        wanted = self._key(name)
        if wanted not in self._keys:
            self.add(name, value)
            return
        index = self._keys.index(wanted)
        self._items[index] = (canonical_name(name), _check_value(value))
        self._drop(wanted, index + 1)

    def remove(self, name: str) -> None:
        self._drop(self._key(name), 0)

    def _drop(self, wanted: str, start: int) -> None:
        keep = [i for i in range(len(self._keys)) if i < start or self._keys[i] != wanted]
        if len(keep) != len(self._keys):
            self._items = [self._items[i] for i in keep]
            self._keys = [self._keys[i] for i in keep]

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first list element of ``name`` (a proxy popping a Route).

        The other elements stay where they were, on their own lines.
        """
        wanted = self._key(name)
        if wanted not in self._keys:
            return None
        index = self._keys.index(wanted)
        header_name, value = self._items[index]
        elements = [v.strip(" \t") for v in split_quoted(value, ",") if v.strip()]
        if wanted not in LIST_HEADERS:
            elements = [value]
        if len(elements) > 1:
            self._items[index] = (header_name, ", ".join(elements[1:]))
        else:
            del self._items[index]
            del self._keys[index]
        if not elements:  # an empty line: nothing to pop there, look further
            return self.pop_first(name)
        return elements[0]

    def __contains__(self, name: str) -> bool:
        return self._key(name) in self._keys

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._keys == other._keys and [v for _, v in self._items] == [
            v for _, v in other._items
        ]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        return Headers._trusted(list(self._items), list(self._keys))


@dataclass
class Via:
    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        """``SIP / 2.0 / UDP host:port ;branch=...``: LWS is allowed around '/', ':' and ';'."""
        head, semi, params = text.partition(";")
        parts = head.split("/")
        if len(parts) != 3:
            raise SipParseError(f"bad Via: {text!r}")
        name, version = parts[0].strip(" \t"), parts[1].strip(" \t")
        transport_sent_by = parts[2].split(None, 1)
        if name.upper() != "SIP" or version != "2.0" or len(transport_sent_by) != 2:
            raise SipParseError(f"bad Via protocol: {text!r}")
        transport, sent_by = transport_sent_by
        if not is_token(transport):
            raise SipParseError(f"bad Via transport: {text!r}")
        if " " in sent_by or "\t" in sent_by:  # only around the colon: "host : 5060"
            pieces = sent_by.split()
            sent_by = pieces[0]
            for piece in pieces[1:]:
                if sent_by[-1] != ":" and piece[0] != ":":
                    raise SipParseError(f"bad Via sent-by: {text!r}")
                sent_by += piece
        try:
            host, port = _hostport(sent_by)
            return cls(transport.upper(), host, port, parse_header_params(semi + params))
        except InvalidUri as error:
            raise SipParseError(f"bad Via: {error}") from None

    def __str__(self) -> str:
        port = f":{self.port}" if self.port else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value a server filled in; None when absent or only asked for."""
        value = self.params.get("rport")
        return int(value) if value and value.isascii() and value.isdigit() else None


def _hostport(text: str) -> tuple[str, int | None]:
    return _split_hostport(text)


@dataclass
class SipMessage(ABC):
    headers: Headers
    body: bytes

    # -- the headers every message has -----------------------------------------------------

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method); the method as written (methods are case-sensitive)."""
        parts = (self.headers.get("CSeq") or "").split()
        if len(parts) != 2 or not _is_number(parts[0], 32) or not is_token(parts[1]):
            raise SipParseError("bad CSeq")
        return int(parts[0]), parts[1]

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        if value is None:
            return None
        if not _is_number(value, 32) or int(value) > 255:
            raise SipParseError("bad Max-Forwards")
        return int(value)

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(value) for value in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        values = self.headers.get_all("Via")
        if not values:
            raise SipParseError("no Via header")
        return Via.parse(values[0])

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("To") or "")

    @property
    def contacts(self) -> list[NameAddr]:
        return [NameAddr.parse(value) for value in self.headers.get_all("Contact")]

    def serialize(self) -> bytes:
        """Wire form: canonical header names, Content-Length always the body's length."""
        lines = [self.start_line()]
        for name, value in self.headers:
            if name != "Content-Length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    @abstractmethod
    def start_line(self) -> str: ...

    def __bytes__(self) -> bytes:
        return self.serialize()


@dataclass
class SipRequest(SipMessage):
    method: str = "OPTIONS"
    uri: SipUri = field(default_factory=lambda: SipUri("sip", "invalid"))

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"


@dataclass
class SipResponse(SipMessage):
    status: int = 200
    reason: str = "OK"

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"


def _is_number(text: str, max_digits: int) -> bool:
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def parse_message(data: bytes, *, stream: bool = False) -> SipMessage:
    """One message from one datagram (or, with ``stream``, one framed message of a stream)."""
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError("message too large", 513)
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")  # RFC 3261 §7.5: ignore CRLFs before the start line
    # The header ends at the first empty line, whichever line ends are used.
    crlf, lf = data.find(b"\n\r\n"), data.find(b"\n\n")
    if crlf < 0 and lf < 0:
        raise SipParseError("no empty line after the header" if data else "empty message")
    if lf < 0 or 0 <= crlf < lf:
        head, rest = data[:crlf], data[crlf + 3 :]
    else:
        head, rest = data[:lf], data[lf + 2 :]
    head = head.replace(b"\r\n", b"\n")
    if head[-1:] == b"\r":
        head = head[:-1]
    if _CTL.search(head):
        raise SipParseError("control character in the header")
    lines = head.decode("utf-8", "surrogateescape").split("\n")
    items: list[tuple[str, str]] = []
    keys: list[str] = []
    names, add_item, add_key = _NAMES, items.append, keys.append
    for line in lines[1:]:
        first = line[:1]
        if first == " " or first == "\t":  # folding (RFC 3261 §7.3.1)
            if not items:
                raise SipParseError("continuation line before any header")
            more = line.strip(" \t")
            if more:
                name, value = items[-1]
                items[-1] = (name, f"{value} {more}" if value else more)
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"malformed header line: {line[:60]!r}")
        if name[-1:] in (" ", "\t"):
            name = name.rstrip(" \t")
        known = names.get(name.lower())
        if known is None:
            if not is_token(name):
                raise SipParseError(f"bad header name: {name[:60]!r}")
            add_item((name, value.strip(" \t")))
            add_key(name.lower())
        else:
            add_item((known[0], value.strip(" \t")))
            add_key(known[1])
    headers = Headers._trusted(items, keys)
    body = _body(headers, rest, stream)
    start = lines[0]
    if start[:4].upper() == "SIP/":
        return _response(start, headers, body)
    return _request(start, headers, body)


def _body(headers: Headers, rest: bytes, stream: bool) -> bytes:
    keys = headers._keys
    count = keys.count("content-length")
    if not count:
        if stream:
            raise SipParseError("Content-Length is required on stream transports")
        return rest
    length_text = headers._items[keys.index("content-length")][1]
    if count > 1 and len(set(headers.get_all("Content-Length"))) > 1:
        raise SipParseError("Content-Length given twice with different values")
    if not _is_number(length_text, 32):
        raise SipParseError(f"bad Content-Length: {length_text[:20]!r}")
    length = int(length_text)
    if length > len(rest):
        raise SipParseError("Content-Length is larger than the message body")
    return rest[:length]


def _check_version(version: str) -> None:
    if version != SIP_VERSION and version.upper() != SIP_VERSION:
        if _VERSION.fullmatch(version):
            raise SipParseError(f"unsupported version {version!r}", 505)
        raise SipParseError(f"bad version {version[:20]!r}")


def _response(start: str, headers: Headers, body: bytes) -> SipResponse:
    version, _, rest = start.partition(" ")
    code, _, reason = rest.partition(" ")
    _check_version(version)
    if not _is_number(code, 3) or not 100 <= int(code) <= 699:
        raise SipParseError(f"bad status code {code[:20]!r}")
    return SipResponse(headers, body, int(code), reason)


def _request(start: str, headers: Headers, body: bytes) -> SipRequest:
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(f"bad request line (want METHOD SP URI SP SIP/2.0): {start[:80]!r}")
    method, uri_text, version = parts
    if not is_token(method):
        raise SipParseError(f"bad method {method[:40]!r}")
    _check_version(version)
    if uri_text[0] == "<":
        raise SipParseError("Request-URI must not be enclosed in <>")
    try:
        uri = SipUri.parse(uri_text)
    except InvalidUri as error:
        raise SipParseError(f"bad Request-URI: {error}") from None
    if uri.opaque is not None:
        raise SipParseError(f"unsupported URI scheme {uri.scheme!r}", 416)
    return SipRequest(headers, body, method, uri)


_MANDATORY = tuple((name.lower(), name) for name in ("To", "From", "Call-ID", "CSeq", "Via"))
_SINGLE = tuple((name.lower(), name) for name in SINGLE_HEADERS)


def _check_common(message: SipMessage) -> None:
    keys = message.headers._keys
    for key, name in _MANDATORY:
        if key not in keys:
            raise SipParseError(f"missing {name} header")
    for key, name in _SINGLE:
        if keys.count(key) > 1:
            raise SipParseError(f"{name} header given more than once")
    call_id = message.call_id
    if not call_id or " " in call_id or "\t" in call_id:
        raise SipParseError("bad Call-ID")
    message.cseq  # noqa: B018 - parsing is the check
    message.max_forwards  # noqa: B018
    try:
        for via in message.headers.get_all("Via"):
            Via.parse(via)
        message.from_  # noqa: B018
        message.to  # noqa: B018
        message.contacts  # noqa: B018
    except InvalidUri as error:
        raise SipParseError(str(error)) from None


def check_request(request: SipRequest) -> None:
    """The mandatory headers of RFC 3261 §8.1.1, present, single and well formed."""
    _check_common(request)
    number, method = request.cseq
    if number >= 2**31:
        raise SipParseError("CSeq number too large")
    if method != request.method and not (request.method == "ACK" and method == "INVITE"):
        raise SipParseError("CSeq method does not match the request")


def check_response(response: SipResponse) -> None:
    """What a client transaction needs of a response: the same headers, well formed."""
    _check_common(response)
    if response.cseq[0] >= 2**31:
        raise SipParseError("CSeq number too large")
