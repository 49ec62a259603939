"""Digest authentication: RFC vectors, client → server round trips, and every way to fail."""

from __future__ import annotations

import re

import pytest

from trunks.sip import digest
from trunks.sip.digest import (
    AuthStatus,
    DigestClient,
    DigestError,
    DigestServer,
    StoredHA1,
    digest_response,
    ha1,
    parse_auth_header,
)
from trunks.sip.message import SipRequest, parse_message

REALM = "voice.example.com"
URI = "sip:voice.example.com"
SECRET = b"0123456789abcdef0123456789abcdef"
USERS = {"alice": "s3cret-pw", "jürgen": "pässwort"}


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> DigestServer:
    return DigestServer(REALM, SECRET, nonce_ttl=300, clock=clock)


def answer(server: DigestServer, client: DigestClient, method: str = "REGISTER", **kw) -> str:
    return client.authorize(client.choose(server.challenge(**kw)), method, URI)


def params(value: str) -> dict[str, str]:
    return parse_auth_header(value)[1]


# -- RFC test vectors --------------------------------------------------------------------------

RFC2617 = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC7616 = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
VECTORS = [  # (challenge, password, cnonce, response): RFC 2617 §3.5, RFC 7616 §3.9.1
    (RFC2617, "Circle Of Life", "0a4f113b", "6629fae49393a05397450978507c4ef1"),
    (
        RFC7616.format("SHA-256"),
        "Circle of Life",
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    ),
    (
        RFC7616.format("MD5"),
        "Circle of Life",
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        "8ca523f5e9506fed4657c9700eebdbec",
    ),
]


def test_rfc2617_ha1() -> None:
    assert ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == (
        "939e7578ed9e3c518a452acee763bce9"
    )


@pytest.mark.parametrize(("challenge", "password", "cnonce", "expected"), VECTORS)
def test_rfc_vectors(challenge: str, password: str, cnonce: str, expected: str) -> None:
    p = params(challenge)
    algorithm = p.get("algorithm", "MD5")
    key = ha1("Mufasa", p["realm"], password, algorithm)
    got = digest_response(
        algorithm, key, p["nonce"], "GET", "/dir/index.html",
        qop="auth", nc="00000001", cnonce=cnonce,
    )  # fmt: skip
    assert got == expected


@pytest.mark.parametrize(("challenge", "password", "cnonce", "expected"), VECTORS)
def test_client_reproduces_rfc_vectors(
    monkeypatch: pytest.MonkeyPatch, challenge: str, password: str, cnonce: str, expected: str
) -> None:
    monkeypatch.setattr(digest.secrets, "token_hex", lambda _: cnonce)
    value = DigestClient("Mufasa", password).authorize(challenge, "GET", "/dir/index.html")
    p = params(value)
    assert p["response"] == expected
    assert (p["qop"], p["nc"], p["cnonce"]) == ("auth", "00000001", cnonce)
    assert p["opaque"] == params(challenge)["opaque"]
    assert p.get("algorithm") == params(challenge).get("algorithm")


# -- challenges --------------------------------------------------------------------------------


def test_challenge_offers_sha256_then_md5(server: DigestServer) -> None:
    sha, md5 = server.challenge()
    for value, algorithm in ((sha, "SHA-256"), (md5, "MD5")):
        assert re.fullmatch(
            rf'Digest realm="{REALM}", nonce="[0-9a-f]{{64}}", algorithm={algorithm}, '
            r'qop="auth", opaque="[0-9a-f]{32}"',
            value,
        )
    assert params(sha)["nonce"] == params(md5)["nonce"]
    assert params(server.challenge()[0])["nonce"] != params(sha)["nonce"]
    assert params(server.challenge(stale=True)[0])["stale"] == "true"


def test_server_refuses_bad_configuration() -> None:
    with pytest.raises(ValueError):
        DigestServer(REALM, b"short")
    with pytest.raises(ValueError):
        DigestServer(REALM, algorithms=("SHA-1",))
    with pytest.raises(ValueError):
        DigestServer("evil\r\nrealm")


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5", "SHA-256-sess", "MD5-sess"])
def test_round_trip(clock: FakeClock, algorithm: str) -> None:
    server = DigestServer(REALM, SECRET, clock=clock, algorithms=(algorithm,))
    client = DigestClient("alice", "s3cret-pw")
    value = answer(server, client)
    assert params(value)["algorithm"] == algorithm
    result = server.verify(value, "REGISTER", USERS, URI)
    assert result.ok and result.username == "alice" and result.reason == ""


def test_client_chooses_sha256(server: DigestServer) -> None:
    sha, md5 = server.challenge()
    client = DigestClient("alice", "s3cret-pw")
    assert client.choose([md5, sha]) == sha
    assert client.choose(["Basic realm=x", "garbage", md5]) == md5
    assert client.choose(['Digest realm="r", nonce="n"']) == 'Digest realm="r", nonce="n"'
    with pytest.raises(DigestError):
        client.choose(["Basic realm=x", 'Digest realm="r", nonce="n", algorithm=SHA-1'])


def test_without_qop_is_rfc2069_md5_and_single_use(server: DigestServer) -> None:
    md5 = server.challenge()[1].replace(', qop="auth"', "")
    value = DigestClient("alice", "s3cret-pw").authorize(md5, "REGISTER", URI)
    assert "qop" not in params(value) and "nc" not in params(value)
    assert server.verify(value, "REGISTER", USERS, URI).ok
    again = server.verify(value, "REGISTER", USERS, URI)
    assert again.stale and "replay" in again.reason


def test_without_qop_refused_for_sha256(server: DigestServer) -> None:
    sha = server.challenge()[0].replace(', qop="auth"', "")
    value = DigestClient("alice", "s3cret-pw").authorize(sha, "REGISTER", URI)
    result = server.verify(value, "REGISTER", USERS, URI)
    assert result.status is AuthStatus.BAD and "qop" in result.reason


def test_unicode_username(server: DigestServer) -> None:
    value = answer(server, DigestClient("jürgen", "pässwort"))
    assert server.verify(value, "REGISTER", USERS, URI).ok


def test_any_process_with_the_secret_verifies(server: DigestServer, clock: FakeClock) -> None:
    other = DigestServer(REALM, SECRET, clock=clock)
    value = answer(server, DigestClient("alice", "s3cret-pw"))
    assert other.verify(value, "REGISTER", USERS, URI).ok


# -- failures ----------------------------------------------------------------------------------


def test_wrong_password(server: DigestServer) -> None:
    value = answer(server, DigestClient("alice", "guess"))
    result = server.verify(value, "REGISTER", USERS, URI)
    assert result.status is AuthStatus.BAD and result.username == "alice"
    assert result.reason == "response mismatch"
    assert "s3cret" not in repr(result) and "guess" not in repr(result)


def test_unknown_user(server: DigestServer) -> None:
    result = server.verify(answer(server, DigestClient("mallory", "x")), "REGISTER", USERS, URI)
    assert result.status is AuthStatus.BAD and result.reason == "unknown user"


def test_wrong_realm(server: DigestServer, clock: FakeClock) -> None:
    elsewhere = DigestServer("other.example.com", SECRET, clock=clock)
    result = server.verify(
        answer(elsewhere, DigestClient("alice", "s3cret-pw")), "REGISTER", USERS, URI
    )
    assert result.status is AuthStatus.BAD and result.reason == "wrong realm"


def test_nonce_of_another_realm_or_secret(server: DigestServer, clock: FakeClock) -> None:
    for other in (
        DigestServer(REALM, b"another secret of enough bytes!!", clock=clock),
        DigestServer("other", SECRET, clock=clock),
    ):
        nonce = params(other.challenge()[0])["nonce"]
        challenge = re.sub(r'nonce="[0-9a-f]+"', f'nonce="{nonce}"', server.challenge()[0])
        value = DigestClient("alice", "s3cret-pw").authorize(challenge, "REGISTER", URI)
        result = server.verify(value, "REGISTER", USERS, URI)
        assert result.status is AuthStatus.BAD and result.reason == "nonce not issued by us"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda n: ("1" if n[0] != "1" else "2") + n[1:],  # the timestamp: make it younger
        lambda n: n[:20] + ("0" if n[20] != "0" else "1") + n[21:],  # the random part
        lambda n: n[:-1] + ("0" if n[-1] != "0" else "1"),  # the MAC
        lambda n: n.upper(),  # same bytes, other spelling
        lambda n: n[:-2],
        lambda n: "zz" + n[2:],
    ],
)
def test_tampered_nonce(server: DigestServer, tamper) -> None:
    challenge = server.challenge()[0]
    nonce = params(challenge)["nonce"]
    value = DigestClient("alice", "s3cret-pw").authorize(
        challenge.replace(nonce, tamper(nonce)), "REGISTER", URI
    )
    result = server.verify(value, "REGISTER", USERS, URI)
    assert result.status is AuthStatus.BAD and result.reason == "nonce not issued by us"


def test_expired_nonce_is_stale_and_retry_succeeds(server: DigestServer, clock: FakeClock) -> None:
    client = DigestClient("alice", "s3cret-pw")
    value = answer(server, client)
    clock.now += 301
    result = server.verify(value, "REGISTER", USERS, URI)
    assert result.stale and result.username == "alice" and result.reason == "nonce expired"
    retry = client.authorize(client.choose(server.challenge(stale=True)), "REGISTER", URI)
    assert params(retry)["nc"] == "00000001"
    assert server.verify(retry, "REGISTER", USERS, URI).ok


def test_expired_nonce_with_wrong_password_is_bad(server: DigestServer, clock: FakeClock) -> None:
    value = answer(server, DigestClient("alice", "guess"))
    clock.now += 301
    assert server.verify(value, "REGISTER", USERS, URI).status is AuthStatus.BAD


def test_nonce_count_replay_refused(server: DigestServer) -> None:
    client = DigestClient("alice", "s3cret-pw")
    challenge = client.choose(server.challenge())
    first = client.authorize(challenge, "REGISTER", URI)
    second = client.authorize(challenge, "REGISTER", URI)
    assert params(second)["nc"] == "00000002"
    assert params(second)["cnonce"] != params(first)["cnonce"]
    assert server.verify(second, "REGISTER", USERS, URI).ok
    for replay in (second, first):  # the same count, then a lower one
        result = server.verify(replay, "REGISTER", USERS, URI)
        assert not result.ok and result.stale and result.reason == "nonce count replayed"
    assert server.verify(client.authorize(challenge, "REGISTER", URI), "REGISTER", USERS, URI).ok


def test_failed_attempt_does_not_consume_a_count(server: DigestServer) -> None:
    challenge = server.challenge()[0]
    bad = DigestClient("alice", "guess").authorize(challenge, "REGISTER", URI)
    assert server.verify(bad, "REGISTER", USERS, URI).status is AuthStatus.BAD
    good = DigestClient("alice", "s3cret-pw").authorize(challenge, "REGISTER", URI)
    assert server.verify(good, "REGISTER", USERS, URI).ok


def test_evicted_nonce_is_stale_not_trusted_again(clock: FakeClock) -> None:
    server = DigestServer(REALM, SECRET, clock=clock, max_nonces=2)
    client = DigestClient("alice", "s3cret-pw")
    old = client.choose(server.challenge())
    assert server.verify(client.authorize(old, "REGISTER", URI), "REGISTER", USERS, URI).ok
    for _ in range(2):
        clock.now += 1
        assert server.verify(answer(server, client), "REGISTER", USERS, URI).ok
    replay = client.authorize(old, "REGISTER", URI)
    result = server.verify(replay, "REGISTER", USERS, URI)
    assert result.stale and result.reason == "nonce no longer tracked"
    clock.now += 1
    assert server.verify(answer(server, client), "REGISTER", USERS, URI).ok


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda v: v.replace(f'uri="{URI}"', 'uri="sip:other.example.com"'), "Request-URI"),
        (lambda v: re.sub(r', opaque="[^"]*"', "", v), "opaque mismatch"),
        (lambda v: re.sub(r'opaque="[^"]*"', 'opaque="x"', v), "opaque mismatch"),
        (lambda v: v.replace("qop=auth", "qop=auth-int"), "unsupported qop"),
        (lambda v: re.sub(r', cnonce="[^"]*"', "", v), "cnonce"),
        (lambda v: v.replace("nc=00000001", "nc=1"), "nc"),
        (lambda v: v.replace("nc=00000001", "nc=0000000g"), "nc"),
        (lambda v: v.replace("nc=00000001", "nc=00000000"), "nonce count zero"),
        (lambda v: v.replace("algorithm=SHA-256", "algorithm=SHA-1"), "algorithm not offered"),
        (lambda v: re.sub(r'response="[^"]*"', 'response="xyz"', v), "malformed response"),
        (lambda v: re.sub(r'response="[^"]*"', 'response="ünï"', v), "malformed response"),
        (lambda v: re.sub(r'response="[^"]*"', 'response="abcd"', v), "response mismatch"),
        (lambda v: v.replace('username="alice"', 'user="alice"'), "missing username"),
        (lambda v: v.replace("Digest ", "Basic "), "not a Digest"),
    ],
)  # fmt: skip
def test_bad_authorization(server: DigestServer, change, reason: str) -> None:
    value = change(answer(server, DigestClient("alice", "s3cret-pw")))
    result = server.verify(value, "REGISTER", USERS, URI)
    assert result.status is AuthStatus.BAD and reason in result.reason


def test_method_is_covered(server: DigestServer) -> None:
    value = answer(server, DigestClient("alice", "s3cret-pw"), method="INVITE")
    assert server.verify(value, "REGISTER", USERS, URI).reason == "response mismatch"
    assert server.verify(value, "INVITE", USERS, URI).ok


def test_algorithm_not_offered(clock: FakeClock) -> None:
    server = DigestServer(REALM, SECRET, clock=clock, algorithms=("SHA-256",))
    md5 = server.challenge()[0].replace("SHA-256", "MD5")
    value = DigestClient("alice", "s3cret-pw").authorize(md5, "REGISTER", URI)
    assert server.verify(value, "REGISTER", USERS, URI).reason == "algorithm not offered"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "Digest",
        "Digest ,,, ,",
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        "Digest,username=alice",
        'Digest username="alice',
        'Digest username="alice\\',
        "Digest username",
        "Digest username=",
        "Digest =alice",
        "Digest username=alice realm=x",
        'Digest username="a"realm="b"',
        'Digest username="a", username="b"',
        'Digest USERNAME="a", Username="b"',
        "\x00\xff\ud800",
        "Digest username=\udcff, realm=x, nonce=y, uri=z, response=00",
        "Digest username=\ud800, realm=x, nonce=y, uri=z, response=00",
        "Digest " + "a=b, " * 2000,
    ],
)
def test_garbage_is_refused_without_exceptions(server: DigestServer, garbage: str) -> None:
    result = server.verify(garbage, "REGISTER", USERS, URI)
    assert result.status is AuthStatus.BAD and result.reason


def test_lone_surrogates_reach_the_hash_safely(server: DigestServer) -> None:
    value = answer(server, DigestClient("alice", "s3cret-pw"))
    for username in ("\udcff", "\ud800"):  # undecodable wire bytes / not encodable at all
        odd = value.replace('username="alice"', f'username="{username}"')
        result = server.verify(odd, "REGISTER", {username: "pw"}, URI)
        assert result.status is AuthStatus.BAD and result.reason


# -- parsing -----------------------------------------------------------------------------------


def test_parse_is_robust_to_spacing_quoting_and_case() -> None:
    scheme, p = parse_auth_header(
        '  digest  UserName = "ali\\"ce" ,,Realm="a, b",\tnonce=abc ,qop="auth,auth-int",'
        'uri = "sip:x@y;transport=tcp" , stale=TRUE, opaque=""  '
    )
    assert scheme == "digest"
    assert p == {
        "username": 'ali"ce',
        "realm": "a, b",
        "nonce": "abc",
        "qop": "auth,auth-int",
        "uri": "sip:x@y;transport=tcp",
        "stale": "TRUE",
        "opaque": "",
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "auth scheme"),
        ('"Digest"', "auth scheme"),
        ("Digest realm", "expected '='"),
        ('Digest realm="x', "unterminated"),
        ("Digest realm=x nonce=y", "expected ','"),
        ("Digest realm=x, realm=y", "duplicate"),
        ('Digest "realm"=x', "parameter name"),
    ],
)
def test_parse_reasons(text: str, reason: str) -> None:
    with pytest.raises(DigestError) as error:
        parse_auth_header(text)
    assert reason in error.value.reason


# -- HA1 storage -------------------------------------------------------------------------------


def test_stored_ha1_instead_of_password(server: DigestServer) -> None:
    stored = {"alice": StoredHA1.from_password("alice", REALM, "s3cret-pw")}
    assert stored["alice"].hashes == {
        "SHA-256": ha1("alice", REALM, "s3cret-pw", "SHA-256"),
        "MD5": ha1("alice", REALM, "s3cret-pw", "MD5"),
    }
    client = DigestClient("alice", "s3cret-pw")
    for challenge in server.challenge():
        value = client.authorize(challenge, "REGISTER", URI)
        assert server.verify(value, "REGISTER", stored, URI).ok


def test_stored_ha1_serves_sess_variant(clock: FakeClock) -> None:
    server = DigestServer(REALM, SECRET, clock=clock, algorithms=("MD5-sess",))
    stored = StoredHA1({"MD5": ha1("alice", REALM, "s3cret-pw", "MD5-sess")})
    value = answer(server, DigestClient("alice", "s3cret-pw"))
    assert server.verify(value, "REGISTER", {"alice": stored}, URI).ok


def test_stored_ha1_missing_for_algorithm(server: DigestServer) -> None:
    stored = {"alice": StoredHA1.from_password("alice", REALM, "s3cret-pw", ("MD5",))}
    result = server.verify(
        answer(server, DigestClient("alice", "s3cret-pw")), "REGISTER", stored, URI
    )
    assert result.status is AuthStatus.BAD and result.reason == "no stored HA1 for SHA-256"


def test_credentials_lookup_callable(server: DigestServer) -> None:
    asked: list[str] = []

    def lookup(username: str) -> str | None:
        asked.append(username)
        return USERS.get(username)

    assert server.verify(
        answer(server, DigestClient("alice", "s3cret-pw")), "REGISTER", lookup, URI
    ).ok
    assert server.verify(
        answer(server, DigestClient("bob", "x")), "REGISTER", lookup, URI
    ).reason == ("unknown user")
    assert asked == ["alice", "bob"]


# -- with SIP messages -------------------------------------------------------------------------


def register(*auth_lines: str) -> SipRequest:
    head = [
        f"REGISTER {URI} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds",
        "Max-Forwards: 70",
        f"To: <sip:alice@{REALM}>",
        f"From: <sip:alice@{REALM}>;tag=1928301774",
        "Call-ID: a84b4c76e66710",
        "CSeq: 2 REGISTER",
        *auth_lines,
        "Content-Length: 0",
    ]
    request = parse_message(("\r\n".join(head) + "\r\n\r\n").encode())
    assert isinstance(request, SipRequest)
    return request


def test_verify_request_picks_our_realm(server: DigestServer, clock: FakeClock) -> None:
    client = DigestClient("alice", "s3cret-pw")
    ours = answer(server, client)
    theirs = answer(DigestServer("upstream.example.net", SECRET, clock=clock), client)
    request = register(f"Authorization: {theirs}", f"Authorization: {ours}")
    assert server.verify_request(request, USERS).ok
    assert server.verify_request(request, USERS, proxy=True).reason == "no credentials"
    assert server.verify_request(request, USERS).stale  # the same credentials again
    proxied = register(f"Proxy-Authorization: {answer(server, client)}")
    assert server.verify_request(proxied, USERS, proxy=True).ok
    assert (
        server.verify_request(register(f"Authorization: {theirs}"), USERS).reason == "wrong realm"
    )


# -- client details ----------------------------------------------------------------------------


def test_client_counts_per_nonce(server: DigestServer) -> None:
    client = DigestClient("alice", "s3cret-pw")
    first = client.choose(server.challenge())
    counts = [params(client.authorize(first, "REGISTER", URI))["nc"] for _ in range(3)]
    assert counts == ["00000001", "00000002", "00000003"]
    assert params(answer(server, client))["nc"] == "00000001"  # a new nonce starts over


def test_client_auth_int_when_only_offered() -> None:
    challenge = 'Digest realm="r", nonce="n", qop="auth-int", algorithm=SHA-256'
    value = DigestClient("alice", "pw").authorize(challenge, "INVITE", "sip:b@r", b"v=0\r\n")
    p = params(value)
    assert p["qop"] == "auth-int"
    assert "opaque" not in p
    assert p["response"] == digest_response(
        "SHA-256", ha1("alice", "r", "pw", "SHA-256"), "n", "INVITE", "sip:b@r",
        qop="auth-int", nc=p["nc"], cnonce=p["cnonce"], body=b"v=0\r\n",
    )  # fmt: skip


def test_client_quotes_awkward_values() -> None:
    value = DigestClient('al"i\\ce', "pw").authorize(
        'Digest realm="r", nonce="n"', "OPTIONS", "sip:r"
    )
    assert params(value)["username"] == 'al"i\\ce'
    assert "algorithm" not in params(value)  # RFC 2617 servers that named none get none back


@pytest.mark.parametrize(
    "challenge",
    [
        'Basic realm="r"',
        'Digest nonce="n"',
        'Digest realm="r"',
        'Digest realm="r", nonce="n", algorithm=SHA-1',
        'Digest realm="r", nonce="n", qop="auth-conf"',
        'Digest realm="r", nonce="n", algorithm=MD5-sess',
        'Digest realm="r", nonce="n',
    ],
)
def test_client_refuses_unusable_challenges(challenge: str) -> None:
    with pytest.raises(DigestError):
        DigestClient("alice", "pw").authorize(challenge, "REGISTER", "sip:r")
