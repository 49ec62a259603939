"""Media bypass through the real gateway: a SIP caller dials our number, the app puts it in a
dialog with a SIP callee, and once both have answered the gateway re-INVITEs each endpoint to
send its RTP straight to the other. Two baresips, each sending its own tone (ausine) and
recording what it hears (sndfile): they hear each other while the gateway's RTP counters stand
still; brought back to the gateway, its counters move again and they still hear each other;
recording the dialog pulls the media back in (the file holds both tones) and stopping it
releases the media to bypass.
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

import pytest

from gateway.app import Gateway
from gateway.core.bridging import MediaPath
from gateway.core.calls import MEDIA_CHANGED
from gateway.core.leg import Leg
from gateway.media.codecs import encode_ulaw
from gateway.testing.audio import dominant_frequency, read_wav, tone, tone_level
from tests.media.test_dialog_audio import echo_dialog, echoed, rtp_packets
from tests.sip.baresip import BARESIP, Account, Baresip
from tests.sip.sipp import DID, SIPP, Sipp, World, free_udp_port, running_world
from tests.sip.test_reinvite import invites, received, sipp_media_port
from trunks.sip import sdp
from trunks.sip.message import SipMessage, SipRequest
from trunks.sip.transport import Peer

needs_baresip = pytest.mark.skipif(BARESIP is None, reason="baresip is not on PATH")
needs_sipp = pytest.mark.skipif(SIPP is None, reason="SIPp is not installed")

CALLER_TONE, CALLEE_TONE = 1000, 440


@dataclass
class Phones:
    """Two baresips, each on a REGISTERED trunk of its own, in front of one gateway."""

    world: World
    caller: Baresip
    callee: Baresip
    callee_trunk: str
    # Each re-INVITE the gateway sent, by the SIP port of the endpoint it went to.
    reinvites: dict[int, list[sdp.SessionDescription]] = field(default_factory=dict)

    @property
    def gateway(self) -> Gateway:
        return self.world.gateway

    def spy_on_reinvites(self) -> None:
        transport = self.gateway.sip.endpoint.transport
        send = transport.send

        def spy(message: SipMessage, peer: Peer, *args: Any, **kwargs: Any) -> None:
            if isinstance(message, SipRequest) and message.method == "INVITE" and message.to.tag:
                self.reinvites.setdefault(peer.port, []).append(sdp.parse_sdp(message.body))
            send(message, peer, *args, **kwargs)

        transport.send = spy  # type: ignore[method-assign]

    async def call_through_a_dialog(self, **child_request: Any) -> tuple[str, str]:
        """The caller dials our number; the app makes a dialog to the callee; both answered."""
        dialled = await self.caller.command("dial", f"sip:{DID}@{self.world.remote}")
        assert dialled["ok"], dialled
        parent = await self.world.received()
        user = self.callee.account.user
        child = await self.world.dialog(parent, self.callee_trunk, user, **child_request)
        await self.world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=parent)
        await self.callee.wait_event("CALL_ESTABLISHED")
        await self.caller.wait_event("CALL_ESTABLISHED")
        return parent, child

    async def packets(self, *legs: str) -> dict[str, float]:
        """The gateway's RTP packet counters of the legs, in and out."""
        counters = rtp_packets((await self.world.api.get("/metrics")).text)
        return {
            f"{leg} {direction}": counters.get(f'call_id="{leg}",direction="{direction}"', 0)
            for leg in legs
            for direction in ("in", "out")
        }


async def subscribe(world: World, name: str, *events: str) -> None:
    """The app's webhook gets ``events`` too (beyond the call events every world sends)."""
    subscription = {
        "subscriptionId": name,
        "name": name,
        "events": list(events),
        "profile": {"profileId": name, "webhook": {"notifyUrl": world.recorder.url}},
    }
    created = await world.api.post("/subscriptions/1/subscription/VOICE_VIDEO", json=subscription)
    assert created.status_code == 201, created.text


async def path_becomes(gateway: Gateway, parent: str, child: str, path: MediaPath) -> None:
    """Until the legs' media takes ``path`` and no endpoint is being moved."""
    async with asyncio.timeout(15):
        while gateway.bridges.path(parent, child) is not path:
            await asyncio.sleep(0.02)
        await gateway.bridges.settled()
    assert gateway.bridges.path(parent, child) is path


async def phone(stack: AsyncExitStack, world: World, name: str, tone: int) -> tuple[Baresip, str]:
    """A registered trunk of its own and a baresip on it sending ``tone`` and recording."""
    trunk = await world.registered_trunk(name)
    account = Account(trunk["username"], trunk["password"], world.remote)
    started = Baresip.start(world.tmp / name, account, record=True, tone=tone)
    baresip = await stack.enter_async_context(started)
    await baresip.wait_registered()
    return baresip, trunk["id"]


@pytest.fixture
async def phones(tmp_path: Path) -> AsyncIterator[Phones]:
    # baresip answers MD5 challenges only, and none that offers another algorithm beside it.
    async with (
        running_world(tmp_path, sip_digest_algorithms="MD5") as world,
        AsyncExitStack() as stack,
    ):
        caller, _ = await phone(stack, world, "caller", CALLER_TONE)
        callee, callee_trunk = await phone(stack, world, "callee", CALLEE_TONE)
        phones = Phones(world, caller, callee, callee_trunk)
        phones.spy_on_reinvites()
        yield phones


def heard(phone: Baresip, seconds: float) -> float:
    """The dominant frequency of the last ``seconds`` the phone heard in its last call (read
    once the call is over: sndfile completes the file then)."""
    recordings = sorted((phone.directory / "recordings").glob("*-dec.wav"))
    assert recordings, f"baresip recorded nothing\n{phone.log()}"
    pcm, rate = read_wav(recordings[-1])
    return dominant_frequency(pcm[-int(seconds * rate) :], rate)


async def hang_up(phones: Phones, parent: str, child: str) -> None:
    """The caller hangs up: both legs end, nothing of theirs is left in the gateway."""
    hung_up = await phones.caller.command("hangup")
    assert hung_up["ok"], hung_up
    for leg in (parent, child):
        await phones.world.recorder.wait_for(types=["CALL_FINISHED"], call_id=leg)
    await phones.callee.wait_event("CALL_CLOSED")
    async with asyncio.timeout(5):
        await phones.gateway.bridges.settled()
    assert phones.gateway.bridges.path(parent, child) is None
    assert phones.gateway.sip.endpoint.session_count == 0
    assert len(phones.gateway.rtp_sessions) == 0
    # No task of the bridges, the adapter or a session is left (moving media, waiting).
    owners = ("MediaBridges.", "SipTrunkAdapter.", "InviteSession.")
    leftovers = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").startswith(owners)
    ]
    assert leftovers == []


@needs_baresip
async def test_two_sip_endpoints_talk_past_the_gateway(phones: Phones):
    parent, child = await phones.call_through_a_dialog()
    await path_becomes(phones.gateway, parent, child, MediaPath.BYPASS)

    # Each endpoint was re-INVITEd towards the other's own RTP address and port.
    calls = phones.gateway.calls
    for endpoint, other in ((phones.caller, child), (phones.callee, parent)):
        native = calls.native_media(other)
        assert native is not None
        [offer] = phones.reinvites[endpoint.sip_port]
        [audio] = offer.media
        assert (audio.connection, audio.port) == (native.address, native.port)
        assert audio.codecs[0].payload_type == native.payload_type

    # The gateway's sessions of the two legs stay silent, RTCP included.
    assert not any(calls.media_port(leg).session.reporting for leg in (parent, child))
    # They talk: nothing goes through the gateway over the window, yet each hears the other.
    before = await phones.packets(parent, child)
    await asyncio.sleep(2.5)  # the measurement window
    assert await phones.packets(parent, child) == before
    await hang_up(phones, parent, child)  # right away: their recordings end with the window
    assert abs(heard(phones.callee, 2.0) - CALLER_TONE) < 10
    assert abs(heard(phones.caller, 2.0) - CALLEE_TONE) < 10


@needs_baresip
async def test_endpoints_brought_back_are_relayed_again(phones: Phones):
    """Bypass first; then the gateway takes the media back (re-INVITEs to its own address):
    its RTP sessions latch on the returning endpoints and relay them to each other."""
    parent, child = await phones.call_through_a_dialog()
    await path_becomes(phones.gateway, parent, child, MediaPath.BYPASS)
    phones.gateway.bridges.bypass = False
    phones.gateway.bridges.join(parent, child)  # re-pick: back through the gateway
    await path_becomes(phones.gateway, parent, child, MediaPath.RELAY)
    assert all(phones.gateway.calls.media_port(leg).session.reporting for leg in (parent, child))
    for endpoint in (phones.caller, phones.callee):
        [_, back] = phones.reinvites[endpoint.sip_port]
        assert (back.media[0].connection, back.media[0].port) == (
            "127.0.0.1",
            phones.gateway.calls.media_port(
                parent if endpoint is phones.caller else child
            ).session.local_port,
        )

    before = await phones.packets(parent, child)
    await asyncio.sleep(2.5)  # the measurement window: 125 packets each way at 20 ms
    after = await phones.packets(parent, child)
    assert all(after[key] - before[key] > 100 for key in before), (before, after)
    await hang_up(phones, parent, child)
    assert abs(heard(phones.callee, 2.0) - CALLER_TONE) < 10
    assert abs(heard(phones.caller, 2.0) - CALLEE_TONE) < 10


async def window(phones: Phones, *legs: str, seconds: float = 1.5) -> dict[str, float]:
    """How many RTP packets the gateway counted for the legs over a measurement window."""
    before = await phones.packets(*legs)
    await asyncio.sleep(seconds)  # the measurement window
    after = await phones.packets(*legs)
    return {key: after[key] - before[key] for key in before}


async def recorded_file(phones: Phones, dialog_id: str) -> bytes:
    """The dialog's composed file, once it is ready."""
    path = f"/calls/1/recordings/dialogs/{dialog_id}"
    async with asyncio.timeout(10):
        while True:
            response = await phones.world.api.get(path)
            if response.status_code == 200 and response.json().get("composedFiles"):
                break
            await asyncio.sleep(0.05)
    (file,) = response.json()["composedFiles"]
    download = await phones.world.api.get(f"/calls/1/recordings/files/{file['id']}")
    assert download.status_code == 200, download.text
    return download.content


@needs_baresip
async def test_recording_pulls_a_bypassed_dialog_in_and_stopping_releases_it(phones: Phones):
    parent, child = await phones.call_through_a_dialog()
    gateway = phones.gateway
    await path_becomes(gateway, parent, child, MediaPath.BYPASS)
    assert set((await window(phones, parent, child)).values()) == {0}

    dialog_id = gateway.calls.get(child).dialog_id
    actions = f"/calls/1/dialogs/{dialog_id}"
    body = {"recordingType": "AUDIO", "dialogComposition": {"enabled": True}}
    started = await phones.world.api.post(f"{actions}/start-recording", json=body)
    assert started.status_code == 200, started.text
    await path_becomes(gateway, parent, child, MediaPath.MIX)
    moving = await window(phones, parent, child)
    assert all(count > 50 for count in moving.values()), moving  # 75 each way at 20 ms

    stopped = await phones.world.api.post(f"{actions}/stop-recording")
    assert stopped.status_code == 200, stopped.text
    await path_becomes(gateway, parent, child, MediaPath.BYPASS)
    assert set((await window(phones, parent, child)).values()) == {0}
    # Each endpoint: bypassed, brought back for the recording, bypassed again.
    for endpoint, other in ((phones.caller, child), (phones.callee, parent)):
        native = gateway.calls.native_media(other)
        assert native is not None
        bypassed, anchored, again = (
            offer.media[0] for offer in phones.reinvites[endpoint.sip_port]
        )
        assert (bypassed.port, again.port) == (native.port, native.port) != (anchored.port,) * 2

    pcm, rate = read_wav(await recorded_file(phones, dialog_id))
    assert len(pcm) > rate  # recorded while the endpoints talked through the gateway
    assert tone_level(pcm, rate, CALLER_TONE) > -25
    assert tone_level(pcm, rate, CALLEE_TONE) > -25
    await hang_up(phones, parent, child)
    assert abs(heard(phones.callee, 1.0) - CALLER_TONE) < 10
    assert abs(heard(phones.caller, 1.0) - CALLEE_TONE) < 10


def media_ports(messages: list[str]) -> list[int]:
    """The m=audio port of each SDP message."""
    return [int(re.search(r"^m=audio (\d+) ", m, re.M)[1]) for m in messages]  # type: ignore[index]


@needs_sipp
async def test_hold_while_bypassed_goes_back_through_the_gateway_until_resumed(tmp_path: Path):
    # Both endpoints send RTP (the caller a tone, the callee its echo): bypass needs to see
    # that their packets come from where their SDP says.
    callee = Sipp("uas_bypass_hold", tmp_path, options=["-mp", str(free_udp_port()), "-rtp_echo"])
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
        options = ["-s", DID, "-mp", str(caller_port)]
        caller = Sipp("uac_bypass_hold", tmp_path, remote=world.remote, timeout=30, options=options)
        (caller.cwd / "tone.ul").write_bytes(encode_ulaw(tone(440, 1.0)).tobytes())
        async with caller:
            parent = await caller.guard(world.received())
            child = await world.dialog(parent, trunk["id"])
            for path in (MediaPath.BYPASS, MediaPath.RELAY, MediaPath.BYPASS):
                await caller.guard(path_becomes(world.gateway, parent, child, path))
            caller_result = await caller.wait()
        callee_result = await callee.wait()
    caller_result.assert_ok()
    callee_result.assert_ok()
    # The hold and the resume (and the first packets of each endpoint, seen where they come
    # from) reached the core; the path went bypass, relay, bypass above.
    assert changed.count(parent) >= 2 and set(changed) <= {parent, child}
    callee_port = sipp_media_port(callee)
    # The caller: bypassed to the callee, brought back to the gateway, bypassed again.
    bypassed, anchored, again = media_ports(invites(caller_result))
    assert bypassed == again == callee_port != anchored
    # Its refresh and its hold were answered for the callee (its port; the hold recvonly, as
    # the scenario checks), and only the hold and the resume changed its media (above).
    answers = {
        answer.split("CSeq: ")[1].split("\n")[0].strip(): answer
        for answer in received(caller_result, "SIP/2.0 200 OK")
    }
    assert media_ports([answers["2 INVITE"], answers["3 INVITE"]]) == [callee_port] * 2
    # The callee: the gateway's offer, then the same moves towards the caller (and maybe a
    # last one back to the gateway, as the dialog ends: see bridging.MediaBridges.part).
    initial, bypassed, anchored, again, *_ = media_ports(invites(callee_result))
    assert bypassed == again == caller_port
    assert initial == anchored != caller_port


@needs_sipp
async def test_an_endpoint_behind_a_nat_is_never_bypassed(tmp_path: Path):
    """The caller's SDP names one port and its RTP comes from another, as behind a NAT: the
    callee could not reach it at its SDP address, so the pair stays relayed through the
    gateway (which answers where the packets come from), with no re-INVITE to either."""
    async with echo_dialog(tmp_path, "uac_rtp_stream_nat") as call:
        gateway, parent, child = call.world.gateway, call.parent, call.child
        packets = await call.caller.guard(echoed(call.world.api, parent, child))  # both latched
        await gateway.bridges.settled()
        assert gateway.bridges.path(parent, child) is MediaPath.RELAY
        assert gateway.calls.native_media(parent) is None  # its SDP is not where it is
        assert gateway.calls.native_media(child) is not None
    # Both SIPps ended well: an unexpected re-INVITE would have failed them.
    assert packets[f'call_id="{child}",direction="in"'] > 50  # the echo came back through us


@needs_baresip
async def test_capturing_dtmf_pulls_a_bypassed_leg_in_until_the_digit_arrives(phones: Phones):
    """While bypassed, the caller's RFC 4733 events would go to the callee: a capture brings
    the media back (its in-band detector taps the leg), the key press reaches the capture, and
    the pair is bypassed again once the capture is over."""
    world, gateway = phones.world, phones.gateway
    await subscribe(world, "actions", "DTMF_CAPTURED")
    parent, child = await phones.call_through_a_dialog()
    await path_becomes(gateway, parent, child, MediaPath.BYPASS)
    capture = {"maxLength": 1, "timeout": 10000}
    started = await world.api.post(f"/calls/1/calls/{parent}/capture/dtmf", json=capture)
    assert started.status_code == 200, started.text
    await path_becomes(gateway, parent, child, MediaPath.MIX)
    sent = await phones.caller.command("sndcode", "4")
    assert sent["ok"], sent
    (captured,) = await world.recorder.wait_for(types=["DTMF_CAPTURED"], call_id=parent)
    assert captured["properties"] == {"dtmf": "4", "timeout": False}
    await path_becomes(gateway, parent, child, MediaPath.BYPASS)
    await hang_up(phones, parent, child)


@needs_baresip
async def test_machine_detection_holds_the_callee_in_the_media_path_only_while_it_runs(
    phones: Phones,
):
    """Until the verdict (whichever it is: the callee answers with a steady tone) the gateway
    hears the callee's RTP, the pair never bypassed meanwhile; then the pair is bypassed and
    the gateway's counters stand still."""
    world, gateway = phones.world, phones.gateway
    await subscribe(world, "amd", "MACHINE_DETECTION_FINISHED")
    detection = {"enabled": True, "detectionTime": 2}
    parent, child = await phones.call_through_a_dialog(machineDetection=detection)
    verdict = asyncio.create_task(
        world.recorder.wait_for(types=["MACHINE_DETECTION_FINISHED"], call_id=child, timeout=10)
    )
    looks = 0
    while gateway.detection.running:  # mixed (through the gateway) while detection runs
        assert gateway.bridges.path(parent, child) is MediaPath.MIX
        looks += 1
        await asyncio.sleep(0.02)
    assert looks > 10  # it was looked at while running, for more than a moment
    await verdict
    heard = await phones.packets(child)
    assert heard[f"{child} in"] > 20  # the callee's audio came through the gateway
    await path_becomes(gateway, parent, child, MediaPath.BYPASS)
    counted = await window(phones, parent, child)
    assert max(counted.values()) <= 2, counted
    await hang_up(phones, parent, child)
