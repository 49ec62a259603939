"""The signalling socket's gatekeeping and errors, and the token API."""

from __future__ import annotations

import logging

import httpx
import pytest

from gateway.testing.webrtc_peer import WebRtcTestPeer
from tests.webrtc.conftest import WebRtcWorld
from trunks.webrtc.signalling import CLOSE_UNAUTHORIZED
from trunks.webrtc.tokens import TokenIssuer


async def test_the_token_api_answers_like_the_clouds(world: WebRtcWorld):
    issued = await world.api.post(
        "/webrtc/1/token",
        json={"identity": "alice", "displayName": "Alice", "timeToLive": 60, "capabilities": {}},
    )
    assert issued.status_code == 200, issued.text
    assert set(issued.json()) == {"token", "expirationTime"}
    grant = world.gateway.webrtc_tokens.verify(issued.json()["token"])
    assert grant is not None and (grant.identity, grant.display_name) == ("alice", "Alice")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"identity": "x"}, "identity"),
        ({"identity": "alice", "timeToLive": 10**7}, "timeToLive"),
        ({"identity": "alice", "applicationId": "no-such-app"}, "applicationId"),
    ],
)
async def test_the_token_api_names_the_bad_field(world: WebRtcWorld, body: dict, field: str):
    refused = await world.api.post("/webrtc/1/token", json=body)
    assert refused.status_code == 400
    assert field in refused.json()["requestError"]["serviceException"]["validationErrors"]


async def test_the_token_api_wants_the_api_key(world: WebRtcWorld):
    transport = httpx.ASGITransport(app=world.gateway.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as anonymous:
        refused = await anonymous.post("/webrtc/1/token", json={"identity": "alice"})
    assert refused.status_code == 401


def expired(world: WebRtcWorld) -> str:
    issuer: TokenIssuer = world.gateway.webrtc_tokens
    token, _ = issuer.issue("alice", ttl=-1)
    return token


@pytest.mark.parametrize("bad", ["", "garbage", "forged", "expired", "non-ascii"])
async def test_a_socket_without_a_valid_token_is_closed_with_a_reason(world: WebRtcWorld, bad: str):
    token = {
        "garbage": "not.a-token",
        "forged": (await world.token("alice"))[:-4] + "AAAA",
        "expired": expired(world),
        "non-ascii": "%C3%A9.%C3%A9",  # "é.é" once decoded
    }.get(bad, bad)
    peer = WebRtcTestPeer(world.ws_url, token)
    await peer.connect()
    try:
        assert await peer.closed() == (CLOSE_UNAUTHORIZED, "invalid or expired token")
        assert not peer.messages
    finally:
        await peer.close()
    assert world.gateway.webrtc_signalling.socket_count == 0


NO_MEDIA = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


async def test_a_bad_offer_is_an_error_and_leaves_no_peer_connection(world: WebRtcWorld):
    async with WebRtcTestPeer(world.ws_url, await world.token("alice")) as peer:
        await peer.send({"type": "call", "ref": "r1", "to": "support", "sdp": "v=0\r\nnonsense"})
        error = await peer.expect("error")
        assert error["ref"] == "r1" and error["reason"].startswith("unusable offer")
        await peer.send({"type": "hangup", "callId": "no-such-call"})
        assert (await peer.expect("error"))["reason"] == "no such call on this socket"
        await peer.send({"type": "frobnicate"})
        assert "unknown message type" in (await peer.expect("error"))["reason"]
        await peer._ws.send("[1, 2]")
        assert (await peer.expect("error"))["reason"] == "not a JSON object with a type"
        await peer._ws.send(b"\x00{}")  # a binary frame
        assert (await peer.expect("error"))["reason"] == "not a JSON object with a type"
        await peer.send({"type": "call", "ref": "r2", "to": "support", "sdp": NO_MEDIA})
        error = await peer.expect("error")
        assert (error["ref"], error["reason"]) == ("r2", "unusable offer: no audio in the offer")
    assert world.gateway.webrtc.peer_count == 0
    assert world.gateway.calls.live_count == 0


async def test_a_token_without_an_application_cannot_call(world: WebRtcWorld):
    token, _ = world.gateway.webrtc_tokens.issue("alice")
    async with WebRtcTestPeer(world.ws_url, token) as peer:
        await peer.send({"type": "call", "ref": "r1", "to": "support", "sdp": "v=0"})
        assert (await peer.expect("error"))["reason"] == "the token names no application to call"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_no_token_is_written_to_the_log(world: WebRtcWorld):
    """uvicorn logs an accepted socket's path with its query at INFO, access log or not."""
    server_log = logging.getLogger("uvicorn.error")
    records, level = Records(), server_log.level
    server_log.addHandler(records)
    server_log.setLevel(logging.INFO)
    try:
        token = await world.token("alice")
        async with WebRtcTestPeer(world.ws_url, token) as peer:
            await peer.expect("registered")  # sent after the accept was logged
    finally:
        server_log.removeHandler(records)
        server_log.setLevel(level)
    accepted = [line for line in records.lines if "[accepted]" in line]
    assert accepted and all("token=<redacted>" in line for line in accepted), records.lines
    assert not [line for line in records.lines if token in line]
