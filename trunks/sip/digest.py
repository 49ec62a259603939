"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760), both sides.

Server nonces are stateless: ``issued-ms ‖ random ‖ HMAC(secret, realm ‖ issued-ms ‖ random)``,
so any process holding the secret can verify them and an old one is known to be expired without
a table. The only state is a bounded LRU of nonce → highest nonce-count, which refuses replays
within this process. A nonce the LRU has had to forget is answered ``stale`` instead of being
trusted afresh, so eviction never reopens a replay window. (Replays across processes sharing a
secret are only bounded by ``nonce_ttl``.)

The digest-uri must equal the Request-URI as a string, normalising nothing: the client hashed the
URI it sent, so rewriting ours could only make honest clients fail, never dishonest ones pass.

Every failure comes back as :class:`AuthResult` with a reason meant for logs; callers should
answer all failures alike so that a scanner cannot tell an unknown user from a wrong password.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trunks.sip.message import SipRequest

ALGORITHMS = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")  # the client's preference order
_BY_NAME = {name.upper(): name for name in ALGORITHMS}
_HASHES = {"MD5": "md5", "SHA-256": "sha256"}
_TOKEN = frozenset(string.ascii_letters + string.digits + "-.!%*_+`'~")
_NC = re.compile(r"[0-9a-fA-F]{8}")
_HEX = re.compile(r"[0-9a-f]+")


class DigestError(ValueError):
    """An unusable header or challenge; ``reason`` is safe to log (it never quotes secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthStatus(Enum):
    OK = "ok"
    STALE = (
        "stale"  # the digest was right but the nonce is no longer good: re-challenge, stale=true
    )
    BAD = "bad"


@dataclass(frozen=True)
class AuthResult:
    status: AuthStatus
    username: str | None = None  # as claimed; only proven when ``ok``
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK

    @property
    def stale(self) -> bool:
        return self.status is AuthStatus.STALE


@dataclass(frozen=True)
class StoredHA1:
    """H(username:realm:password) per base algorithm, so the password itself need not be kept."""

    hashes: Mapping[str, str]  # {"SHA-256": "...", "MD5": "..."}

    @classmethod
    def from_password(
        cls,
        username: str,
        realm: str,
        password: str,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
    ) -> StoredHA1:
        return cls({_base(a): ha1(username, realm, password, a) for a in algorithms})

    def get(self, algorithm: str) -> str | None:
        return self.hashes.get(_base(algorithm))


Credential = str | StoredHA1  # a plaintext password, or its HA1s
Credentials = Callable[[str], Credential | None] | Mapping[str, Credential]


def _algorithm(name: str) -> str:
    algorithm = _BY_NAME.get(name.upper())
    if algorithm is None:
        raise DigestError("unsupported algorithm")
    return algorithm


def _base(algorithm: str) -> str:
    return _algorithm(algorithm).removesuffix("-sess")


def _h(algorithm: str, data: str | bytes) -> str:
    if isinstance(data, str):
        try:
            # surrogateescape gives back the exact wire bytes message.py decoded
            data = data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise DigestError("value is not encodable") from None
    # MD5 is what the protocol mandates; saying so keeps FIPS builds from refusing it.
    return hashlib.new(_HASHES[_base(algorithm)], data, usedforsecurity=False).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username:realm:password). For ``-sess`` this is the stored part; nonces mix in later."""
    return _h(algorithm, f"{username}:{realm}:{password}")


def digest_response(
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    *,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1); ``qop=None`` is the RFC 2069 form."""
    if _algorithm(algorithm).endswith("-sess"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop is not None and qop.lower() == "auth-int":
        a2 += ":" + _h(algorithm, body)
    ha2 = _h(algorithm, a2)
    if qop is None:
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def parse_auth_header(value: str) -> tuple[str, dict[str, str]]:
    """``Digest k=v, k="v, with comma"`` → ("Digest", {"k": "v", ...}).

    Names are lowered and quoted values unescaped; empty list elements are skipped (RFC 7230
    #rule). Anything else malformed raises :class:`DigestError`.
    """
    text = value.strip()
    n = len(text)
    i = _skip_token(text, 0)
    scheme = text[:i]
    if not scheme or (i < n and text[i] not in " \t"):
        raise DigestError("missing or malformed auth scheme")
    params: dict[str, str] = {}
    while True:
        i = _skip(text, i, " \t,")
        if i >= n:
            return scheme, params
        start, i = i, _skip_token(text, i)
        name = text[start:i].lower()
        if not name:
            raise DigestError(f"expected a parameter name at offset {start}")
        i = _skip(text, i, " \t")
        if i >= n or text[i] != "=":
            raise DigestError(f"expected '=' after {name[:40]!r}")
        i = _skip(text, i + 1, " \t")
        if i < n and text[i] == '"':
            param, i = _quoted(text, i)
        else:
            start = i
            while i < n and text[i] not in ' \t,"':
                i += 1
            param = text[start:i]
            if not param:
                raise DigestError(f"empty value for {name[:40]!r}")
        if name in params:
            raise DigestError(f"duplicate parameter {name[:40]!r}")
        params[name] = param
        i = _skip(text, i, " \t")
        if i < n and text[i] != ",":
            raise DigestError(f"expected ',' after {name[:40]!r}")


def _skip(text: str, i: int, chars: str) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _skip_token(text: str, i: int) -> int:
    while i < len(text) and text[i] in _TOKEN:
        i += 1
    return i


def _quoted(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    i += 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\" and i + 1 < len(text):
            i += 1
            char = text[i]
        out.append(char)
        i += 1
    raise DigestError("unterminated quoted string")


def _quote(text: str) -> str:
    if any(c in text for c in "\r\n\0"):
        raise DigestError("control character in a header value")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DigestServer:
    """Challenges and checks credentials for one realm (registrar, INVITE authentication)."""

    def __init__(
        self,
        realm: str,
        secret: bytes | None = None,
        nonce_ttl: float = 300,
        clock: Callable[[], float] = time.time,
        *,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        max_nonces: int = 10_000,
    ) -> None:
        if secret is not None and len(secret) < 16:
            raise ValueError("the nonce secret needs at least 16 bytes")
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self.algorithms = tuple(_algorithm(a) for a in algorithms)  # strongest first: RFC 8760
        self.max_nonces = max_nonces
        self._quoted_realm = _quote(realm)
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._clock = clock
        self._opaque = self._mac(b"opaque").hex()
        self._counts: OrderedDict[str, tuple[int, int]] = OrderedDict()  # nonce → (issued, nc)
        self._forgotten = -1  # newest issue time (ms) among nonces evicted from _counts

    def challenge(self, stale: bool = False) -> list[str]:
        """WWW-Authenticate / Proxy-Authenticate values, one per algorithm, sharing a nonce."""
        nonce = self._new_nonce()
        tail = ", stale=true" if stale else ""
        return [
            f'Digest realm={self._quoted_realm}, nonce="{nonce}", algorithm={algorithm}, '
            f'qop="auth", opaque="{self._opaque}"{tail}'
            for algorithm in self.algorithms
        ]

    def verify(
        self, authorization: str, method: str, credentials: Credentials, request_uri: str
    ) -> AuthResult:
        """Check an Authorization / Proxy-Authorization value against the request it came with."""
        try:
            scheme, params = parse_auth_header(authorization)
        except DigestError as error:
            return AuthResult(AuthStatus.BAD, None, error.reason)
        try:
            return self._verify(scheme, params, method, credentials, request_uri)
        except DigestError as error:
            return AuthResult(AuthStatus.BAD, params.get("username"), error.reason)

    def verify_request(
        self, request: SipRequest, credentials: Credentials, *, proxy: bool = False
    ) -> AuthResult:
        """:meth:`verify` on the credentials for our realm (a request may carry one per realm).

        The Request-URI is ``str(request.uri)``, i.e. as our parser renders it.
        """
        values = request.headers.get_all("Proxy-Authorization" if proxy else "Authorization")
        if not values:
            return AuthResult(AuthStatus.BAD, None, "no credentials")
        ours = next((value for value in values if self._realm_of(value) == self.realm), values[0])
        return self.verify(ours, request.method, credentials, str(request.uri))

    def _verify(
        self,
        scheme: str,
        p: dict[str, str],
        method: str,
        credentials: Credentials,
        request_uri: str,
    ) -> AuthResult:
        if scheme.lower() != "digest":
            raise DigestError("not a Digest authorization")
        missing = [
            name for name in ("username", "realm", "nonce", "uri", "response") if name not in p
        ]
        if missing:
            raise DigestError("missing " + ", ".join(missing))
        username, nonce, qop = p["username"], p["nonce"], p.get("qop")
        if p["realm"] != self.realm:
            raise DigestError("wrong realm")
        algorithm = _BY_NAME.get(p.get("algorithm", "MD5").upper())
        if algorithm is None or algorithm not in self.algorithms:
            raise DigestError("algorithm not offered")
        if qop is None:
            if algorithm != "MD5":
                raise DigestError(f"qop is required with {algorithm}")
            nc = 1  # RFC 2069 has no count, so each nonce serves one request
        elif qop.lower() != "auth":
            raise DigestError("unsupported qop")
        elif "cnonce" not in p or not _NC.fullmatch(p.get("nc", "")):
            raise DigestError("qop without cnonce or a valid nc")
        else:
            nc = int(p["nc"], 16)
            if nc == 0:
                raise DigestError("nonce count zero")
        if p["uri"] != request_uri:
            raise DigestError("digest-uri does not match the Request-URI")
        if p.get("opaque") != self._opaque:
            raise DigestError("opaque mismatch")
        issued = self._issued(nonce)
        if issued is None:
            raise DigestError("nonce not issued by us")
        given = p["response"].lower()
        if not _HEX.fullmatch(given):
            raise DigestError("malformed response")
        stored = (
            credentials.get(username) if isinstance(credentials, Mapping) else credentials(username)
        )
        if stored is None:
            raise DigestError("unknown user")
        if isinstance(stored, StoredHA1):
            key = stored.get(algorithm)
            if key is None:
                raise DigestError(f"no stored HA1 for {algorithm}")
        else:
            key = ha1(username, self.realm, stored, algorithm)
        expected = digest_response(
            algorithm, key, nonce, method, p["uri"],
            qop=qop, nc=p.get("nc", ""), cnonce=p.get("cnonce", ""),
        )  # fmt: skip
        if not hmac.compare_digest(expected, given):
            raise DigestError("response mismatch")
        return self._accept(username, nonce, issued, nc)

    def _accept(self, username: str, nonce: str, issued: int, nc: int) -> AuthResult:
        """Right digest: now is the nonce still good? Stale tells the client to just retry."""
        if self._now_ms() - issued > self.nonce_ttl * 1000:
            return AuthResult(AuthStatus.STALE, username, "nonce expired")
        seen = self._counts.get(nonce)
        if seen is None and issued <= self._forgotten:
            return AuthResult(AuthStatus.STALE, username, "nonce no longer tracked")
        if seen is not None and nc <= seen[1]:
            return AuthResult(AuthStatus.STALE, username, "nonce count replayed")
        self._counts[nonce] = (issued, nc)
        self._counts.move_to_end(nonce)
        if len(self._counts) > self.max_nonces:
            _, (evicted, _) = self._counts.popitem(last=False)
            self._forgotten = max(self._forgotten, evicted)
        return AuthResult(AuthStatus.OK, username)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _mac(self, data: bytes) -> bytes:
        message = self.realm.encode("utf-8", "surrogateescape") + b"\0" + data
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:16]

    def _new_nonce(self) -> str:
        body = self._now_ms().to_bytes(8, "big") + secrets.token_bytes(8)
        return (body + self._mac(b"nonce" + body)).hex()

    def _issued(self, nonce: str) -> int | None:
        """The nonce's issue time in ms if we made it (any process sharing the secret did)."""
        try:
            raw = bytes.fromhex(nonce)
        except ValueError:
            return None
        if len(raw) != 32 or raw.hex() != nonce:  # one spelling per nonce: it keys _counts
            return None
        body, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, self._mac(b"nonce" + body)):
            return None
        return int.from_bytes(body[:8], "big")

    @staticmethod
    def _realm_of(value: str) -> str | None:
        try:
            return parse_auth_header(value)[1].get("realm")
        except DigestError:
            return None


class DigestClient:
    """Answers a carrier's challenges: outbound REGISTER, INVITE through an authenticating trunk."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self._counts: dict[str, tuple[str, int]] = {}  # realm → (nonce, last nc): one nonce each

    def choose(self, challenges: list[str]) -> str:
        """The strongest usable Digest challenge (SHA-256 over MD5); DigestError if none."""
        ranked: list[tuple[int, str]] = []
        for value in challenges:
            try:
                scheme, params = parse_auth_header(value)
                algorithm = _algorithm(params.get("algorithm", "MD5"))
            except DigestError:
                continue
            if scheme.lower() == "digest":
                ranked.append((ALGORITHMS.index(algorithm), value))
        if not ranked:
            raise DigestError("no usable Digest challenge")
        return min(ranked, key=lambda item: item[0])[1]

    def authorize(self, challenge: str, method: str, uri: str, body: bytes = b"") -> str:
        """The Authorization / Proxy-Authorization value answering ``challenge``."""
        scheme, p = parse_auth_header(challenge)
        if scheme.lower() != "digest":
            raise DigestError("not a Digest challenge")
        if "realm" not in p or "nonce" not in p:
            raise DigestError("challenge without realm or nonce")
        realm, nonce = p["realm"], p["nonce"]
        algorithm = _algorithm(p.get("algorithm", "MD5"))
        offered = {q.strip().lower() for q in p.get("qop", "").split(",") if q.strip()}
        qop = next((q for q in ("auth", "auth-int") if q in offered), None)
        if offered and qop is None:
            raise DigestError("no supported qop offered")
        if qop is None and algorithm.endswith("-sess"):
            raise DigestError(f"{algorithm} needs qop")
        nc = cnonce = ""
        if qop is not None:
            last_nonce, count = self._counts.get(realm, (nonce, 0))
            count = count + 1 if last_nonce == nonce else 1
            self._counts[realm] = (nonce, count)
            nc, cnonce = f"{count:08x}", secrets.token_hex(8)
        key = ha1(self.username, realm, self._password, algorithm)
        response = digest_response(
            algorithm, key, nonce, method, uri, qop=qop, nc=nc, cnonce=cnonce, body=body
        )
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(realm)}",
            f"nonce={_quote(nonce)}",
            f"uri={_quote(uri)}",
            f'response="{response}"',
        ]
        if "algorithm" in p:
            parts.append(f"algorithm={algorithm}")
        if qop is not None:
            parts += [f'cnonce="{cnonce}"', f"qop={qop}", f"nc={nc}"]
        if "opaque" in p:
            parts.append(f"opaque={_quote(p['opaque'])}")
        return "Digest " + ", ".join(parts)
