"""Interop with baresip, a real SIP user agent nobody here wrote: signalling and call states only.

baresip registers to a REGISTERED trunk with digest auth, is called through the Calls API and
auto-answers, calls in (answering the gateway's 407) and is answered or rejected through the API.
It is driven over ``ctrl_tcp`` (see :mod:`tests.sip.baresip`); the Calls API's side is observed
through webhooks. Media is not in scope: nothing listens on the gateway's SDP address yet.

baresip 1.0.0 on libre 1.1.0 answers MD5 digest challenges only, and gives up (ENOSYS) on a
401/407 that carries *any* other algorithm, even beside an MD5 one (RFC 8760 §2.4 says a UAC
ignores the challenges it does not support). So these tests challenge with MD5 alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import Gateway
from gateway.testing.app import prepare_app
from gateway.testing.audio import dominant_frequency, read_wav
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.conftest import API_KEY, fast_settings
from tests.sip.baresip import BARESIP, Account, Baresip

pytestmark = pytest.mark.skipif(BARESIP is None, reason="baresip is not on PATH")

CONFIG = "baresip-config"
DID = "441134960100"
TRUNK = {
    "type": "REGISTERED",
    "name": "phone",
    "channelLimit": 10,
    "billingPackage": {"packageType": "METERED"},
}


@dataclass
class World:
    gateway: Gateway
    api: httpx.AsyncClient
    recorder: WebhookRecorder
    trunk: dict[str, Any]
    account: Account
    tmp_path: Path

    @property
    def sip_port(self) -> int:
        return self.gateway.settings.sip_port

    async def status(self) -> dict[str, Any]:
        response = await self.api.get(f"/calls/1/sip-trunks/{self.trunk['id']}/status")
        assert response.status_code == 200, response.text
        return response.json()

    async def events(self, call_id: str, last: str, timeout: float = 10) -> list[dict[str, Any]]:
        """Every event of the call up to and including its ``last`` one."""
        await self.recorder.wait_for(types=[last], call_id=call_id, timeout=timeout)
        return self.recorder.events(call_id=call_id)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = fast_settings(tmp_path / "data", sip_digest_algorithms="MD5")
    gateway = Gateway.build(settings)
    await gateway.start()
    try:
        async with (
            WebhookRecorder() as recorder,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway.api),
                base_url="http://gateway",
                headers={"Authorization": f"App {API_KEY}"},
            ) as api,
        ):
            await prepare_app(api, recorder.url, CONFIG, numbers=[DID])
            response = await api.post("/calls/1/sip-trunks", json=TRUNK)
            assert response.status_code == 202, response.text
            trunk = response.json()
            account = Account(
                trunk["username"], trunk["password"], f"127.0.0.1:{settings.sip_port}"
            )
            yield World(gateway, api, recorder, trunk, account, tmp_path)
    finally:
        await gateway.stop()


@pytest.fixture
async def phone(world: World) -> AsyncIterator[Baresip]:
    """baresip, registered to the world's trunk."""
    async with Baresip.start(world.tmp_path / "baresip", world.account) as phone:
        await phone.wait_registered()
        yield phone


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def call_log(events: list[dict[str, Any]]) -> dict[str, Any]:
    return events[-1]["properties"]["callLog"]


async def test_registers_with_digest_and_unregisters_on_quit(world: World):
    assert (await world.status())["registrationStatus"] == "UNREGISTERED"
    async with Baresip.start(world.tmp_path / "baresip", world.account) as phone:
        info = await phone.wait_registered()
        assert "OK" in info and world.account.user in info
        status = await world.status()
        assert (status["registrationStatus"], status["activeCalls"]) == ("REGISTERED", 0)
        # baresip waits for the answer to its REGISTER with Expires 0 before it exits.
        await phone.stop()
    assert "Register: " not in "".join(phone.output), phone.log()  # no failed REGISTER
    assert (await world.status())["registrationStatus"] == "UNREGISTERED"


async def test_outbound_call_auto_answered_then_hung_up_by_api(world: World, phone: Baresip):
    request = {
        "endpoint": {
            "type": "SIP",
            "username": world.account.user,
            "sipTrunkId": world.trunk["id"],
        },
        "from": "441134960999",
        "connectTimeout": 10,
        "callsConfigurationId": CONFIG,
    }
    created = await world.api.post("/calls/1/calls", json=request)
    assert created.status_code == 201, created.text
    call_id = created.json()["id"]

    # Auto-answered: baresip 1.0 raises no CALL_INCOMING then, just CALL_ESTABLISHED.
    established = await phone.wait_event("CALL_ESTABLISHED")
    assert established["direction"] == "incoming"
    assert established["peeruri"].startswith("sip:441134960999@")
    await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id, timeout=10)
    assert (await world.status())["activeCalls"] == 1

    hung_up = await world.api.post(f"/calls/1/calls/{call_id}/hangup", json={})
    assert hung_up.status_code == 200, hung_up.text
    await phone.wait_event("CALL_CLOSED")
    events = await world.events(call_id, "CALL_FINISHED")
    # baresip sends 180 Ringing before its automatic 200.
    assert types(events) == ["CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_FINISHED"]
    started = events[0]["properties"]["call"]
    assert started["direction"] == "OUTBOUND"
    assert started["endpoint"]["sipTrunkId"] == world.trunk["id"]
    log = call_log(events)
    assert (log["state"], log["hangupSource"], log["errorCode"]["name"]) == (
        "FINISHED",
        "API",
        "NORMAL_HANGUP",
    )
    assert (await world.status())["activeCalls"] == 0


async def dial_in(world: World, phone: Baresip) -> str:
    """baresip calls the DID; the gateway challenges it; the id of the call that is received."""
    response = await phone.command("dial", f"sip:{DID}@127.0.0.1:{world.sip_port}")
    assert response["ok"], response
    received = await world.recorder.wait_for(types=["CALL_RECEIVED"], timeout=10)
    event = received[-1]
    call = event["properties"]["call"]
    assert call["direction"] == "INBOUND"
    assert call["to"] == DID
    assert call["endpoint"]["sipTrunkId"] == world.trunk["id"]
    return event["callId"]


async def test_inbound_call_answered_by_api_then_hung_up_by_phone(world: World, phone: Baresip):
    call_id = await dial_in(world, phone)
    answered = await world.api.post(f"/calls/1/calls/{call_id}/answer", json={})
    assert answered.status_code == 200, answered.text
    await phone.wait_event("CALL_ESTABLISHED")
    await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id, timeout=10)

    hung_up = await phone.command("hangup")
    assert hung_up["ok"], hung_up
    await phone.wait_event("CALL_CLOSED")
    events = await world.events(call_id, "CALL_FINISHED")
    assert types(events) == ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED"]
    log = call_log(events)
    assert (log["state"], log["hangupSource"], log["errorCode"]["name"]) == (
        "FINISHED",
        "ENDPOINT",
        "NORMAL_HANGUP",
    )
    assert (await world.status())["activeCalls"] == 0


async def test_inbound_call_rejected_busy_by_api(world: World, phone: Baresip):
    call_id = await dial_in(world, phone)
    rejected = await world.api.post(f"/calls/1/calls/{call_id}/hangup", json={"errorCode": "BUSY"})
    assert rejected.status_code == 200, rejected.text
    closed = await phone.wait_event("CALL_CLOSED")
    assert "486" in closed.get("param", ""), closed
    events = await world.events(call_id, "CALL_FAILED")
    assert types(events) == ["CALL_RECEIVED", "CALL_FAILED"]
    log = call_log(events)
    assert (log["state"], log["errorCode"]["name"]) == ("BUSY", "BUSY")
    assert "answerTime" not in log


async def test_baresip_hears_the_simulated_caller_through_a_dialog(world: World):
    """A simulated caller dials our number; the app puts it in a dialog with baresip, which
    auto-answers and records what it hears (sndfile): the caller's 1000 Hz tone, over RTP."""
    async with Baresip.start(world.tmp_path / "listener", world.account, record=True) as phone:
        await phone.wait_registered()
        placed = await world.api.post("/pstn/1/calls", json={"from": "15557654321", "to": DID})
        caller = placed.json()["callId"]
        await world.api.put(f"/pstn/1/calls/{caller}/source",
                            json={"type": "tone", "frequency": 1000})  # fmt: skip
        endpoint = {"type": "SIP", "username": world.account.user, "sipTrunkId": world.trunk["id"]}
        created = await world.api.post(
            "/calls/1/dialogs",
            json={"parentCallId": caller, "childCallRequest": {"endpoint": endpoint}},
        )
        assert created.status_code == 201, created.text
        await phone.wait_event("CALL_ESTABLISHED")
        ticks = world.gateway.media.ticks
        async with asyncio.timeout(10):
            while world.gateway.media.ticks < ticks + 75:  # 1.5 s of audio
                await asyncio.sleep(0.02)
        await world.api.post(f"/calls/1/dialogs/{created.json()['id']}/hangup")
        await phone.wait_event("CALL_CLOSED")
    recordings = sorted((world.tmp_path / "listener" / "recordings").glob("*-dec.wav"))
    assert recordings, "baresip recorded nothing"
    pcm, rate = read_wav(recordings[-1])
    tail = pcm[-rate:]  # the last second: the bridge is up by then
    assert abs(dominant_frequency(tail, rate) - 1000) < 10
