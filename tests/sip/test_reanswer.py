"""Our 200 OK to a re-INVITE of theirs is repeated until they ACK it (RFC 3261 §13.3.1.4,
RFC 6026), as the 200 to their first INVITE is: a raw UDP caller withholds the ACK and
counts what arrives."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.sip.sipp import DID, RawUdp, World, running_world, udp_client
from trunks.sip.transaction import T1

SDP = (
    "v=0\r\no=probe 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n"
)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_world(tmp_path) as world:
        await world.static_trunk(source_hosts=["127.0.0.1"])
        yield world


def request(method: str, client: RawUdp, cseq: int, to_tag: str = "", body: str = "") -> str:
    port = client.local_port
    lines = [
        f"{method} sip:{DID}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-reanswer-{method}-{cseq}",
        "Max-Forwards: 70",
        f"From: <sip:probe@127.0.0.1>;tag=probe{port}",
        f"To: <sip:{DID}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: reanswer-{port}@127.0.0.1",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:probe@127.0.0.1:{port}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


async def next_final(client: RawUdp, cseq: int, timeout: float) -> str:
    """The next final response to the request with ``cseq`` (provisionals skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            text = (await client.protocol.queue.get()).decode(errors="replace")
            status = text.split(" ", 2)[1] if text.startswith("SIP/2.0 ") else ""
            if status and not status.startswith("1") and f"CSeq: {cseq} " in text:
                return text


def send(client: RawUdp, message: str) -> None:
    client.transport.sendto(message.encode())


async def test_our_200_to_their_re_invite_is_repeated_until_acked(world: World):
    async with udp_client(world.sip_port) as client:
        send(client, request("INVITE", client, 1, body=SDP.format(version=1, direction="sendrecv")))
        call_id = await world.received()
        await world.answer(call_id)
        answer = await next_final(client, 1, 5)
        tag = re.search(r"^To:.*;tag=([^;\r\n]+)", answer, re.M)[1]  # type: ignore[index]
        send(client, request("ACK", client, 1, tag))

        hold = SDP.format(version=2, direction="sendonly")
        send(client, request("INVITE", client, 2, tag, body=hold))
        first = await next_final(client, 2, 5)
        assert first.startswith("SIP/2.0 200") and "a=recvonly" in first
        again = await next_final(client, 2, 4 * T1)  # no ACK yet: the same 200, after T1
        assert again == first
        send(client, request("ACK", client, 2, tag))
        with pytest.raises(TimeoutError):  # ACKed: nothing more within the next two intervals
            await next_final(client, 2, 3 * T1 * 2)

        send(client, request("BYE", client, 3, tag))
        bye = await next_final(client, 3, 5)
        assert bye.startswith("SIP/2.0 200")
    await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
    assert world.gateway.sip.endpoint.session_count == 0
