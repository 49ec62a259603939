"""Dialogs carry audio: the caller and the callee hear each other's tone and not their own,
the callee's early media reaches the caller before the answer, and a real SIP caller's RTP
(SIPp streaming a tone) reaches a simulated phone through the gateway."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from gateway.app import Gateway
from gateway.media.codecs import encode_ulaw
from gateway.testing.audio import dominant_frequency, read_wav, tone, tone_level
from tests import test_dialogs
from tests.sip.sipp import DID as SIP_DID
from tests.sip.sipp import Sipp, World, running_world
from tests.test_dialogs import ANNOUNCES_LONG, ANSWERS, App

app = test_dialogs.app  # the same fixture: a voice app with the dialog tests' numbers


async def run_ticks(gateway: Gateway, count: int) -> None:
    target = gateway.media.ticks + count
    async with asyncio.timeout(count * 0.02 + 5):
        while gateway.media.ticks < target:
            await asyncio.sleep(0.02)


def rtp_packets(metrics: str) -> dict[str, float]:
    """``gateway_rtp_packets_total`` by its labels, from the /metrics page."""
    return {
        line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("gateway_rtp_packets_total{")
    }


async def echoed(api: httpx.AsyncClient, parent: str, child: str) -> dict[str, float]:
    """Wait until a second of packets went in at the caller and came back from the callee."""
    async with asyncio.timeout(10):
        while True:
            packets = rtp_packets((await api.get("/metrics")).text)
            if (
                min(packets.get(f'call_id="{leg}",direction="in"', 0) for leg in (parent, child))
                > 50
            ):
                return packets
            await asyncio.sleep(0.05)


async def heard(api: httpx.AsyncClient, call_id: str, last_seconds: float) -> np.ndarray:
    pcm, rate = read_wav((await api.get(f"/pstn/1/calls/{call_id}/heard")).content)
    assert rate == 8000
    return pcm[-int(last_seconds * rate) :]


async def test_the_two_calls_of_a_dialog_hear_each_other(app: App, gateway: Gateway):
    parent = await app.inbound()
    dialog = await app.dialog(parent, ANSWERS)
    await app.wait(dialog["id"], "DIALOG_ESTABLISHED")
    child = dialog["childCall"]["id"]
    for call_id, frequency in ((parent, 440), (child, 1000)):
        await app.api.put(f"/pstn/1/calls/{call_id}/source",
                          json={"type": "tone", "frequency": frequency})  # fmt: skip
    await run_ticks(gateway, 60)
    at_parent, at_child = await heard(app.api, parent, 1.0), await heard(app.api, child, 1.0)
    assert abs(dominant_frequency(at_parent, 8000) - 1000) < 5
    assert abs(dominant_frequency(at_child, 8000) - 440) < 5
    assert tone_level(at_parent, 8000, 440) < -40
    assert tone_level(at_child, 8000, 1000) < -40
    await app.api.post(f"/calls/1/dialogs/{dialog['id']}/hangup")
    await app.wait(dialog["id"], "DIALOG_FINISHED")
    assert not gateway.media.bridges  # nothing left in the media path


async def test_early_media_is_heard_by_the_caller_before_the_answer(app: App, gateway: Gateway):
    parent = await app.inbound()
    dialog = await app.dialog(parent, ANNOUNCES_LONG)
    await app.recorder.wait_for(types=["CALL_PRE_ESTABLISHED"], call_id=parent)
    await run_ticks(gateway, 40)
    state = (await app.api.get(f"/calls/1/calls/{parent}")).json()["state"]
    assert state == "PRE_ESTABLISHED"  # not answered, yet it hears the announcement
    early = await heard(app.api, parent, 0.6)
    assert abs(dominant_frequency(early, 8000) - 440) < 5
    await app.api.post(f"/calls/1/dialogs/{dialog['id']}/hangup")


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
async def test_rtp_from_a_sip_caller_reaches_a_simulated_phone(tmp_path: Path):
    """SIPp calls in and streams 440 Hz µ-law; the app puts it in a dialog with a simulated
    phone, which hears the tone; the RTP counters on /metrics saw packets both ways."""
    async with running_world(tmp_path) as world:
        await world.static_trunk(source_hosts=["127.0.0.1"])
        fast = {"number": ANSWERS, "behaviour": "answer", "options": {"answerAfterMs": 20}}
        await world.api.post("/pstn/1/numbers", json=fast)
        sipp = Sipp(
            "uac_rtp_stream", tmp_path, remote=world.remote, timeout=20, options=["-s", SIP_DID]
        )
        (sipp.cwd / "tone.ul").write_bytes(encode_ulaw(tone(440, 3.0)).tobytes())
        async with sipp:
            parent = await sipp.guard(world.received())
            created = await world.api.post("/calls/1/dialogs", json={
                "parentCallId": parent,
                "childCallRequest": {"endpoint": {"type": "PHONE", "phoneNumber": ANSWERS},
                                     "from": "441134960999"}})  # fmt: skip
            assert created.status_code == 201, created.text
            child = created.json()["childCall"]["id"]
            await sipp.guard(world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=parent))
            await sipp.guard(run_ticks(world.gateway, 75))
            metrics = (await world.api.get("/metrics")).text
            result = await sipp.wait()
        result.assert_ok()
        at_phone = await heard(world.api, child, 1.0)
    assert abs(dominant_frequency(at_phone, 8000) - 440) < 5
    packets = rtp_packets(metrics)
    assert packets[f'call_id="{parent}",direction="in"'] > 50
    assert packets[f'call_id="{parent}",direction="out"'] > 50


@dataclass
class EchoDialog:
    """A SIPp caller streaming a tone, in a dialog with a SIPp callee that echoes RTP back."""

    world: World
    caller: Sipp
    callee: Sipp
    parent: str
    child: str


@asynccontextmanager
async def echo_dialog(
    tmp_path: Path, caller_scenario: str, bypass: bool = True
) -> AsyncIterator[EchoDialog]:
    """Answered and established; both SIPps have ended well when the block is left."""
    echo = Sipp("uas_answer", tmp_path, timeout=20, options=["-rtp_echo"])
    async with running_world(tmp_path) as world, echo as callee:
        world.gateway.bridges.bypass = bypass
        trunk = await world.static_trunk(
            source_hosts=["127.0.0.1"], destination_hosts=[f"127.0.0.1:{callee.port}"]
        )
        caller = Sipp(
            caller_scenario, tmp_path, remote=world.remote, timeout=20, options=["-s", SIP_DID]
        )
        (caller.cwd / "tone.ul").write_bytes(encode_ulaw(tone(440, 3.0)).tobytes())
        async with caller:
            parent = await caller.guard(world.received())
            child = await world.dialog(parent, trunk["id"])
            established = world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=parent)
            await caller.guard(callee.guard(established))
            yield EchoDialog(world, caller, callee, parent, child)
            (await caller.wait()).assert_ok()
        (await callee.wait()).assert_ok()


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
async def test_two_sip_legs_with_one_codec_are_relayed_without_the_mixer(tmp_path: Path):
    """SIPp calls in and streams PCMU; the app makes a dialog to a SIPp callee that echoes
    RTP back (-rtp_echo). Both legs agreed on PCMU, so the gateway forwards packets as they
    are: no bridge in the media plane, and the counters show the stream going through.
    Bypass is off: it would take the gateway out of the path (tests/sip/test_bypass.py)."""
    async with echo_dialog(tmp_path, "uac_rtp_stream", bypass=False) as call:
        assert not call.world.gateway.media.bridges  # relayed, not mixed
        packets = await call.caller.guard(echoed(call.world.api, call.parent, call.child))
    parent, child = call.parent, call.child
    relayed_in = packets[f'call_id="{parent}",direction="in"']
    assert relayed_in > 50
    assert packets[f'call_id="{child}",direction="out"'] >= relayed_in - 2  # forwarded as is
    assert packets[f'call_id="{child}",direction="in"'] > 50  # the callee's echo came back
    assert packets[f'call_id="{parent}",direction="out"'] > 50  # and went on to the caller
