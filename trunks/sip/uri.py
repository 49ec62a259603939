"""SIP and SIPS URIs (RFC 3261 §19.1), name-addr values and header parameters.

Values are kept as written (escapes included) so that what we forward is what we received;
comparisons that RFC 3261 makes case-insensitive (scheme, host, parameter names) are lowered.

``sip:`` and ``sips:`` URIs are parsed into their parts and checked against the RFC 3261
character sets (an unescaped space, ``<``, ``"`` or a ``%`` that is not ``%HH`` is refused);
``tel:`` URIs keep the number in ``user``. Any other scheme (``mailto:``, ``urn:``...) is kept
opaque in ``opaque`` with an empty ``host``: legal in To, From and Contact, but not something we
can send to (``address()`` refuses it), and the message parser refuses it in a Request-URI
(416).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field


class InvalidUri(ValueError):
    pass


class UnsupportedScheme(InvalidUri):
    """A well-formed absolute URI whose scheme is not sip, sips or tel."""


Params = dict[str, str | None]

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UNRESERVED = _ALNUM + "-_.!~*'()"
# RFC 3261 §25.1; '%' is allowed by the sets and then checked to start a %HH escape.
_USER_CHARS = frozenset(_UNRESERVED + "%&=+$,;?/")
_PASSWORD_CHARS = frozenset(_UNRESERVED + "%&=+$,")
_URI_PARAM_CHARS = frozenset(_UNRESERVED + "%[]/:&+$;=")  # the whole ";a=b;c" run
_URI_HEADER_CHARS = frozenset(_UNRESERVED + "%[]/?:+$=&")
_HOST_CHARS = frozenset(_ALNUM + "-._")  # '_' is not RFC 3261, but it is common in the wild
_TEL_CHARS = frozenset(_ALNUM + "-.()+*#%")
_OPAQUE_BAD = frozenset(' \t<>"\\')
_ADDR_SPEC_BAD = frozenset(' \t?,<>"')
_SCHEME_CHARS = frozenset(_ALNUM + "+-.")
TOKEN_CHARS = frozenset(_ALNUM + "-.!%*_+`'~")
# A header parameter value is a token, a host (IPv6 included) or a quoted string.
_GEN_VALUE_CHARS = TOKEN_CHARS | frozenset(":[]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def split_quoted(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes and angle brackets."""
    if separator not in text:
        return [text]
    if '"' not in text and "<" not in text:
        return text.split(separator)
    parts: list[str] = []
    depth, quoted, escaped, start = 0, False, False, 0
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            depth += 1
        elif char == ">":
            depth = max(0, depth - 1)
        elif char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def quoted_string_end(text: str, start: int = 0) -> int:
    """Index just past the quoted string opening at ``text[start]``; InvalidUri if unterminated."""
    index, length = start + 1, len(text)
    while index < length:
        char = text[index]
        if char == '"':
            return index + 1
        index += 2 if char == "\\" else 1
    raise InvalidUri(f"unterminated quoted string in {text!r}")


def unquote(text: str) -> str:
    """The content of a quoted string (quotes included in ``text``), quoted-pairs resolved."""
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    index = 0
    while index < len(inner):
        char = inner[index]
        if char == "\\" and index + 1 < len(inner):
            index += 1
            char = inner[index]
        out.append(char)
        index += 1
    return "".join(out)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text: str) -> Params:
    """``;a=b;c`` (the leading ``;`` optional) into {"a": "b", "c": None}; names lowered.

    Empty parameters (``;;``, a trailing ``;``) and empty names are refused: RFC 3261 has no
    room for them and RFC 4475 §3.1.2.1 wants such "extraneous separators" rejected.
    """
    text = text.strip(" \t")
    if not text:
        return {}
    if text[0] == ";":
        text = text[1:]
    params: Params = {}
    for part in split_quoted(text, ";"):
        name, eq, value = part.partition("=")
        name = name.strip(" \t").lower()
        if not name:
            raise InvalidUri(f"empty parameter in {text!r}")
        params[name] = value.strip(" \t") if eq else None
    return params


def parse_header_params(text: str) -> Params:
    """Header parameters after a value (``;tag=x;q=0.5;+sip.instance="<urn:...>"``).

    ``generic-param = token [ EQUAL gen-value ]``, gen-value a token, a host or a quoted string
    (kept with its quotes).
    """
    text = text.strip(" \t")
    if not text:
        return {}
    if text[0] != ";":
        raise InvalidUri(f"parameters must start with ';': {text!r}")
    params = parse_params(text)
    for name, value in params.items():
        if not TOKEN_CHARS.issuperset(name):
            raise InvalidUri(f"bad parameter name {name!r}")
        if value is None:
            continue
        if value[:1] == '"':
            if quoted_string_end(value) != len(value):
                raise InvalidUri(f"junk after quoted parameter value {value!r}")
        elif not value or not _GEN_VALUE_CHARS.issuperset(value):
            raise InvalidUri(f"bad value for parameter {name!r}: {value!r}")
    return params


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _check_chars(text: str, allowed: frozenset[str], what: str) -> None:
    if not allowed.issuperset(text):
        bad = sorted(set(text) - allowed)
        raise InvalidUri(f"bad character {bad[0]!r} in URI {what}: {text!r}")
    if "%" in text and _BAD_ESCAPE.search(text):
        raise InvalidUri(f"'%' is not a %HH escape in URI {what}: {text!r}")


def _check_host(host: str, text: str) -> str:
    if host[0] == "[":
        if host[-1] != "]":
            raise InvalidUri(f"bad IPv6 reference in {text!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidUri(f"bad IPv6 address in {text!r}") from None
        return host.lower()
    if not _HOST_CHARS.issuperset(host) or host[0] in "-." or ".." in host:
        raise InvalidUri(f"bad host in {text!r}")
    if host[-1].isdigit():  # a dotted quad (a hostname's top label starts with a letter)
        octets = host.split(".")
        if len(octets) != 4 or not all(o.isdigit() and int(o) < 256 for o in octets):
            raise InvalidUri(f"bad IPv4 address in {text!r}")
    return host.lower()


def _split_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InvalidUri(f"unterminated IPv6 reference in {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidUri(f"junk after IPv6 reference in {text!r}")
        colon, port_text = rest[:1], rest[1:]
    else:
        host, colon, port_text = text.partition(":")
    if not host:
        raise InvalidUri(f"empty host in {text!r}")
    host = _check_host(host, text)
    if colon:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise InvalidUri(f"bad port in {text!r}")
        return host, int(port_text)
    return host, None


@dataclass
class SipUri:
    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = field(default_factory=dict)
    headers: str | None = None
    opaque: str | None = None  # everything after "scheme:" for schemes other than sip/sips/tel

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip(" \t")
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or not scheme or not scheme[0].isalpha():
            raise InvalidUri(f"not a URI: {text!r}")
        if scheme == "sip" or scheme == "sips":
            return cls._parse_sip(scheme, rest, text)
        if scheme == "tel":
            number, semi, params = rest.partition(";")
            if not number:
                raise InvalidUri(f"empty tel number in {text!r}")
            _check_chars(number, _TEL_CHARS, "number")
            if params:
                _check_chars(params, _URI_PARAM_CHARS, "parameters")
            return cls("tel", "", number, None, None, parse_params(semi + params))
        if not _SCHEME_CHARS.issuperset(scheme):
            raise InvalidUri(f"bad URI scheme in {text!r}")
        if not rest or not _OPAQUE_BAD.isdisjoint(rest):
            raise InvalidUri(f"bad {scheme} URI: {text!r}")
        return cls(scheme, "", opaque=rest)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str, text: str) -> SipUri:
        # '@' cannot appear unescaped anywhere but after the userinfo, while the user part may
        # hold ';', '?' and '/': split there first, then params and headers off the host part.
        user = password = None
        at = rest.find("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user, sep, password_text = userinfo.partition(":")
            if not user:
                raise InvalidUri(f"empty user in {text!r}")
            _check_chars(user, _USER_CHARS, "user")
            if sep:
                _check_chars(password_text, _PASSWORD_CHARS, "password")
                password = password_text
        rest, question, headers = rest.partition("?")
        hostport, semi, params = rest.partition(";")
        host, port = _split_hostport(hostport)
        if semi:
            _check_chars(params, _URI_PARAM_CHARS, "parameters")
        if question:
            if not headers or "=" not in headers:
                raise InvalidUri(f"bad URI headers in {text!r}")
            _check_chars(headers, _URI_HEADER_CHARS, "headers")
        return cls(scheme, host, user, password, port, parse_params(semi + params), headers or None)

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        port = f":{self.port}" if self.port else ""
        tail = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{format_params(self.params)}{tail}"

    @property
    def is_sip(self) -> bool:
        """A sip: or sips: URI, something we can route to."""
        return self.scheme == "sip" or self.scheme == "sips"

    @property
    def transport(self) -> str:
        """The transport the URI asks for; SIPS means TLS."""
        wanted = (self.params.get("transport") or "").lower()
        if self.scheme == "sips":
            return "tls" if wanted in ("", "tcp", "tls") else wanted
        return wanted or "udp"

    @property
    def default_port(self) -> int:
        return 5061 if self.scheme == "sips" or self.transport == "tls" else 5060

    def address(self, default_port: int | None = None) -> tuple[str, int]:
        """(host, port) to send to: the explicit port, else 5061 for sips/TLS, else 5060."""
        if not self.is_sip:
            raise InvalidUri(f"cannot send to a {self.scheme}: URI")
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        if self.port:
            return host, self.port
        if default_port is not None and self.scheme == "sip" and self.transport != "tls":
            return host, default_port
        return host, self.default_port


@dataclass
class NameAddr:
    """``"Display" <uri>;params`` (From, To, Contact, Route, Record-Route...)."""

    uri: SipUri
    display_name: str | None = None
    params: Params = field(default_factory=dict)
    wildcard: bool = False  # Contact: *

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip(" \t")
        if text == "*":
            return cls(SipUri("sip", "*"), wildcard=True)
        display: str | None = None
        if text[:1] == '"':
            end = quoted_string_end(text)
            display = unquote(text[:end])
            rest = text[end:].lstrip(" \t")
            if rest[:1] != "<":
                raise InvalidUri(f"a quoted display name must be followed by <uri>: {text!r}")
        elif "<" in text:
            lt = text.index("<")
            words = text[:lt].split()
            for word in words:
                if not TOKEN_CHARS.issuperset(word):
                    raise InvalidUri(f"display name with non-token characters unquoted: {text!r}")
            display = " ".join(words)
            rest = text[lt:]
        else:
            # addr-spec: after the first ';' come header params (RFC 3261 §20: a URI with
            # ';', ',' or '?' of its own must be in angle brackets).
            uri_text, semi, params = text.partition(";")
            uri_text = uri_text.rstrip(" \t")  # SEMI = SWS ";" SWS
            if not uri_text or not _ADDR_SPEC_BAD.isdisjoint(uri_text):
                raise InvalidUri(f"this URI needs angle brackets: {text!r}")
            return cls(SipUri.parse(uri_text), None, parse_header_params(semi + params))
        gt = rest.find(">")
        if gt < 0:
            raise InvalidUri(f"missing '>' in {text!r}")
        uri_text = rest[1:gt]
        if not uri_text or uri_text != uri_text.strip() or " " in uri_text or "\t" in uri_text:
            raise InvalidUri(f"spaces inside <> in {text!r}")
        return cls(SipUri.parse(uri_text), display or None, parse_header_params(rest[gt + 1 :]))

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        display = f"{quote(self.display_name)} " if self.display_name else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")
