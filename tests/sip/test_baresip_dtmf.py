"""RFC 4733 both ways with baresip, a SIP phone nobody here wrote: the keys it sends
(``sndcode``) reach the core once each, and the digits the Calls API sends it (``send-dtmf``)
arrive as its own DTMF events, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.core.leg import Leg
from tests.sip import test_baresip
from tests.sip.baresip import BARESIP, Baresip
from tests.sip.test_baresip import DID, World

pytestmark = pytest.mark.skipif(BARESIP is None, reason="baresip is not on PATH")

world = test_baresip.world  # the fixture: a gateway, its API, and a trunk baresip registers to


async def called_in(world: World, phone: Baresip) -> str:
    """baresip dials our number and the app answers: the call's id."""
    await phone.wait_registered()
    dialled = await phone.command("dial", f"sip:{DID}@127.0.0.1:{world.sip_port}")
    assert dialled["ok"], dialled
    received = await world.recorder.wait_for(types=["CALL_RECEIVED"])
    call_id = received[0]["properties"]["call"]["id"]
    answered = await world.api.post(f"/calls/1/calls/{call_id}/answer", json={})
    assert answered.status_code == 200, answered.text
    await phone.wait_event("CALL_ESTABLISHED")
    return call_id


async def test_keys_baresip_sends_reach_the_core_once_each(world: World, tmp_path: Path):
    keyed: list[str] = []
    three = asyncio.Event()

    def observe(leg: Leg, digit: str) -> None:
        keyed.append(digit)
        if len(keyed) == 3:
            three.set()

    world.gateway.calls.observe_dtmf(observe)
    async with Baresip.start(tmp_path / "phone", world.account) as phone:
        await called_in(world, phone)
        for key in "7#7":
            sent = await phone.command("sndcode", key)
            assert sent["ok"], sent
        await asyncio.wait_for(three.wait(), 10)
        await phone.command("hangup")
        await world.recorder.wait_for(types=["CALL_FINISHED"])
    assert "".join(keyed) == "7#7"  # the same key twice is two presses, each counted once


async def test_digits_the_api_sends_arrive_at_baresip(world: World, tmp_path: Path):
    async with Baresip.start(tmp_path / "phone", world.account) as phone:
        call_id = await called_in(world, phone)
        sent = await world.api.post(f"/calls/1/calls/{call_id}/send-dtmf", json={"dtmf": "5#"})
        assert sent.status_code == 200, sent.text
        first = await phone.wait_event("CALL_DTMF_START")
        second = await phone.wait_event("CALL_DTMF_START")
        assert (first.get("param"), second.get("param")) == ("5", "#")
        await phone.wait_event("CALL_DTMF_END")  # the #'s: its ends made no new press
        assert phone.event_types().count("CALL_DTMF_START") == 2
