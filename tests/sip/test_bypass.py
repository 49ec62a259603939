"""Media bypass through the real gateway: a SIP caller dials our number, the app puts it in a
dialog with a SIP callee, and once both have answered the gateway re-INVITEs each endpoint to
send its RTP straight to the other. Two baresips, each sending its own tone (ausine) and
recording what it hears (sndfile): they hear each other while the gateway's RTP counters stand
still; brought back to the gateway, its counters move again and they still hear each other.
And two SIPps: a hold while bypassed reaches the core as MEDIA_CHANGED and takes the pair back
through the gateway (relay); the resume bypasses it again."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import Gateway
from gateway.core.bridging import MediaPath
from gateway.core.calls import MEDIA_CHANGED
from gateway.core.leg import Leg
from gateway.testing.app import prepare_app
from gateway.testing.audio import dominant_frequency, read_wav
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.conftest import API_KEY, fast_settings
from tests.media.test_dialog_audio import rtp_packets
from tests.sip.baresip import BARESIP, Account, Baresip
from tests.sip.sipp import DID as SIPP_DID
from tests.sip.sipp import SIPP, Sipp, free_udp_port, running_world
from tests.sip.test_reinvite import invites, received
from trunks.sip import sdp
from trunks.sip.message import SipMessage, SipRequest
from trunks.sip.transport import Peer

needs_baresip = pytest.mark.skipif(BARESIP is None, reason="baresip is not on PATH")
needs_sipp = pytest.mark.skipif(SIPP is None, reason="SIPp is not installed")

CONFIG = "bypass-config"
DID = "441134960100"
CALLER_TONE, CALLEE_TONE = 1000, 440


@dataclass
class World:
    gateway: Gateway
    api: httpx.AsyncClient
    recorder: WebhookRecorder
    caller: Baresip
    callee: Baresip
    callee_trunk: str
    tmp_path: Path
    # Each re-INVITE the gateway sent, by the SIP port of the endpoint it went to.
    reinvites: dict[int, list[sdp.SessionDescription]] = field(default_factory=dict)

    def spy_on_reinvites(self) -> None:
        transport = self.gateway.sip.endpoint.transport
        send = transport.send

        def spy(message: SipMessage, peer: Peer, *args: Any, **kwargs: Any) -> None:
            if isinstance(message, SipRequest) and message.method == "INVITE" and message.to.tag:
                self.reinvites.setdefault(peer.port, []).append(sdp.parse_sdp(message.body))
            send(message, peer, *args, **kwargs)

        transport.send = spy  # type: ignore[method-assign]

    async def call_through_a_dialog(self) -> tuple[str, str]:
        """The caller dials our number; the app makes a dialog to the callee; both answered."""
        dialled = await self.caller.command("dial", f"sip:{DID}@127.0.0.1:{self.sip_port}")
        assert dialled["ok"], dialled
        received = await self.recorder.wait_for(types=["CALL_RECEIVED"], timeout=10)
        parent = received[-1]["callId"]
        endpoint = {"type": "SIP", "username": self.callee.account.user,
                    "sipTrunkId": self.callee_trunk}  # fmt: skip
        body = {"parentCallId": parent, "childCallRequest": {"endpoint": endpoint}}
        created = await self.api.post("/calls/1/dialogs", json=body)
        assert created.status_code == 201, created.text
        child = created.json()["childCall"]["id"]
        await self.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=parent, timeout=10)
        await self.callee.wait_event("CALL_ESTABLISHED")
        await self.caller.wait_event("CALL_ESTABLISHED")
        return parent, child

    @property
    def sip_port(self) -> int:
        return self.gateway.settings.sip_port

    async def path_becomes(self, parent: str, child: str, path: MediaPath) -> None:
        await path_becomes(self.gateway, parent, child, path)

    async def packets(self, *legs: str) -> dict[str, float]:
        """The gateway's RTP packet counters of the legs, in and out."""
        counters = rtp_packets((await self.api.get("/metrics")).text)
        return {
            f"{leg} {direction}": counters.get(f'call_id="{leg}",direction="{direction}"', 0)
            for leg in legs
            for direction in ("in", "out")
        }


async def path_becomes(gateway: Gateway, parent: str, child: str, path: MediaPath) -> None:
    """Until the legs' media takes ``path`` and no endpoint is being moved."""
    async with asyncio.timeout(15):
        while gateway.bridges.path(parent, child) is not path:
            await asyncio.sleep(0.02)
        await gateway.bridges.settled()
    assert gateway.bridges.path(parent, child) is path


async def phone(
    stack: AsyncExitStack, api: httpx.AsyncClient, tmp_path: Path, name: str, tone: int, port: int
) -> tuple[Baresip, str]:
    """A registered trunk of its own and a baresip on it sending ``tone`` and recording."""
    trunk = {"type": "REGISTERED", "name": name, "channelLimit": 10,
             "billingPackage": {"packageType": "METERED"}}  # fmt: skip
    created = await api.post("/calls/1/sip-trunks", json=trunk)
    assert created.status_code == 202, created.text
    body = created.json()
    account = Account(body["username"], body["password"], f"127.0.0.1:{port}")
    started = Baresip.start(tmp_path / name, account, record=True, tone=tone)
    baresip = await stack.enter_async_context(started)
    await baresip.wait_registered()
    return baresip, body["id"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = fast_settings(tmp_path / "data", sip_digest_algorithms="MD5")
    gateway = Gateway.build(settings)
    await gateway.start()
    try:
        async with (
            AsyncExitStack() as stack,
            WebhookRecorder() as recorder,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway.api),
                base_url="http://gateway",
                headers={"Authorization": f"App {API_KEY}"},
            ) as api,
        ):
            await prepare_app(api, recorder.url, CONFIG, numbers=[DID])
            port = settings.sip_port
            caller, _ = await phone(stack, api, tmp_path, "caller", CALLER_TONE, port)
            callee, callee_trunk = await phone(stack, api, tmp_path, "callee", CALLEE_TONE, port)
            world = World(gateway, api, recorder, caller, callee, callee_trunk, tmp_path)
            world.spy_on_reinvites()
            yield world
    finally:
        await gateway.stop()


def heard(phone: Baresip, seconds: float) -> float:
    """The dominant frequency of the last ``seconds`` the phone heard in its last call (read
    once the call is over: sndfile completes the file then)."""
    recordings = sorted((phone.directory / "recordings").glob("*-dec.wav"))
    assert recordings, f"baresip recorded nothing\n{phone.log()}"
    pcm, rate = read_wav(recordings[-1])
    return dominant_frequency(pcm[-int(seconds * rate) :], rate)


async def hang_up(world: World, parent: str, child: str) -> None:
    """The caller hangs up: both legs end, nothing of theirs is left in the gateway."""
    hung_up = await world.caller.command("hangup")
    assert hung_up["ok"], hung_up
    for leg in (parent, child):
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=leg, timeout=10)
    await world.callee.wait_event("CALL_CLOSED")
    async with asyncio.timeout(5):
        await world.gateway.bridges.settled()
    assert world.gateway.bridges.path(parent, child) is None
    assert world.gateway.sip.endpoint.session_count == 0
    assert len(world.gateway.rtp_sessions) == 0
    # The tasks that moved the endpoints are done too, and no redirect is left waiting.
    leftovers = [task for task in asyncio.all_tasks() if "redirect" in repr(task.get_coro())]
    assert leftovers == []


@needs_baresip
async def test_two_sip_endpoints_talk_past_the_gateway(world: World):
    parent, child = await world.call_through_a_dialog()
    await world.path_becomes(parent, child, MediaPath.BYPASS)

    # Each endpoint was re-INVITEd towards the other's own RTP address and port.
    calls = world.gateway.calls
    for endpoint, other in ((world.caller, child), (world.callee, parent)):
        native = calls.native_media(other)
        assert native is not None
        [offer] = world.reinvites[endpoint.sip_port]
        [audio] = offer.media
        assert (audio.connection, audio.port) == (native.address, native.port)
        assert audio.codecs[0].payload_type == native.payload_type

    # They talk: nothing goes through the gateway over the window, yet each hears the other.
    before = await world.packets(parent, child)
    await asyncio.sleep(2.5)  # the measurement window
    assert await world.packets(parent, child) == before
    await hang_up(world, parent, child)  # right away: their recordings end with the window
    assert abs(heard(world.callee, 2.0) - CALLER_TONE) < 10
    assert abs(heard(world.caller, 2.0) - CALLEE_TONE) < 10


@needs_baresip
async def test_endpoints_brought_back_are_relayed_again(world: World):
    """Bypass first; then the gateway takes the media back (re-INVITEs to its own address):
    its RTP sessions latch on the returning endpoints and relay them to each other."""
    parent, child = await world.call_through_a_dialog()
    await world.path_becomes(parent, child, MediaPath.BYPASS)
    world.gateway.bridges.bypass = False
    world.gateway.bridges.join(parent, child)  # re-pick: back through the gateway
    await world.path_becomes(parent, child, MediaPath.RELAY)
    for endpoint in (world.caller, world.callee):
        [_, back] = world.reinvites[endpoint.sip_port]
        assert (back.media[0].connection, back.media[0].port) == (
            "127.0.0.1",
            world.gateway.calls.media_port(
                parent if endpoint is world.caller else child
            ).session.local_port,
        )

    before = await world.packets(parent, child)
    await asyncio.sleep(2.5)  # the measurement window: 125 packets each way at 20 ms
    after = await world.packets(parent, child)
    assert all(after[key] - before[key] > 100 for key in before), (before, after)
    await hang_up(world, parent, child)
    assert abs(heard(world.callee, 2.0) - CALLER_TONE) < 10
    assert abs(heard(world.caller, 2.0) - CALLEE_TONE) < 10


def media_ports(messages: list[str]) -> list[int]:
    """The m=audio port of each SDP message."""
    return [int(re.search(r"^m=audio (\d+) ", m, re.M)[1]) for m in messages]  # type: ignore[index]


@needs_sipp
async def test_hold_while_bypassed_goes_back_through_the_gateway_until_resumed(tmp_path: Path):
    callee = Sipp("uas_bypass_hold", tmp_path, timeout=30, options=["-mp", str(free_udp_port())])
    async with running_world(tmp_path) as world, callee:
        trunk = await world.static_trunk(
            source_hosts=["127.0.0.1"], destination_hosts=[f"127.0.0.1:{callee.port}"]
        )
        changed: list[str] = []

        def on_event(leg: Leg, event: str) -> None:
            if event == MEDIA_CHANGED:
                changed.append(leg.id)

        world.gateway.calls.observe(on_event)
        caller_port = free_udp_port()
        options = ["-s", SIPP_DID, "-mp", str(caller_port)]
        caller = Sipp("uac_bypass_hold", tmp_path, remote=world.remote, timeout=30, options=options)
        async with caller:
            parent = await caller.guard(world.received())
            endpoint = {"type": "SIP", "username": "bob", "sipTrunkId": trunk["id"]}
            body = {"parentCallId": parent, "childCallRequest": {"endpoint": endpoint}}
            created = await world.api.post("/calls/1/dialogs", json=body)
            assert created.status_code == 201, created.text
            child = created.json()["childCall"]["id"]
            for path in (MediaPath.BYPASS, MediaPath.RELAY, MediaPath.BYPASS):
                await caller.guard(path_becomes(world.gateway, parent, child, path))
            caller_result = await caller.wait()
        callee_result = await callee.wait()
    caller_result.assert_ok()
    callee_result.assert_ok()
    assert changed == [parent, parent]  # the hold and the resume, nothing else
    callee_port = int(callee.argv[callee.argv.index("-mp") + 1])
    # The caller: bypassed to the callee, brought back to the gateway, bypassed again.
    bypassed, anchored, again = media_ports(invites(caller_result))
    assert bypassed == again == callee_port != anchored
    # Its hold was answered for the callee (its port, recvonly: the scenario checks that).
    [hold_answer] = [
        answer for answer in received(caller_result, "SIP/2.0 200 OK") if "CSeq: 2 INVITE" in answer
    ]
    assert media_ports([hold_answer]) == [callee_port]
    # The callee: the gateway's offer, then the same moves towards the caller (and maybe a
    # last one back to the gateway, as the dialog ends: see bridging.MediaBridges.part).
    initial, bypassed, anchored, again, *_ = media_ports(invites(callee_result))
    assert bypassed == again == caller_port
    assert initial == anchored != caller_port
