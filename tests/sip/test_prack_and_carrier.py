"""Reliable provisional responses (RFC 3262) and the upstream carrier, with SIPp as the peer:
a caller that requires 100rel, a carrier registrar that challenges our REGISTER, a carrier
that challenges our INVITE to a PSTN number, and a carrier calling one of our numbers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.media.port import NativeMedia
from tests.sip.sipp import CONFIG_ID, DID, SIPP, Sipp, World, outcome, run_sipp, running_world

pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp is not installed (make system-deps)")

CARRIER_USER, CARRIER_PASSWORD = "gw", "carrier-secret"


async def test_caller_requiring_100rel_gets_a_reliable_183(tmp_path: Path):
    async with running_world(tmp_path) as world:
        await world.static_trunk(source_hosts=["127.0.0.1"])
        async with Sipp("uac_100rel", tmp_path, remote=world.remote, options=["-s", DID]) as sipp:
            call_id = await sipp.guard(world.received())
            response = await world.api.post(f"/calls/1/calls/{call_id}/pre-answer", json={})
            assert response.status_code == 200, response.text
            await sipp.guard(
                world.recorder.wait_for(types=["CALL_PRE_ESTABLISHED"], call_id=call_id)
            )
            await world.answer(call_id)
            result = await sipp.wait()
        result.assert_ok()
        assert "PRACK" in result.messages and "RSeq: 1" in result.messages
        assert "Require: 100rel" in result.messages.split("183 Session Progress", 1)[1]
        events = await world.sequence(call_id)
        assert world.types(call_id) == [
            "CALL_RECEIVED", "CALL_PRE_ESTABLISHED", "CALL_ESTABLISHED", "CALL_FINISHED"
        ]  # fmt: skip
        assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")


@pytest.fixture
async def carrier_world(tmp_path: Path) -> AsyncIterator[tuple[World, Sipp]]:
    """A gateway whose carrier is a SIPp registrar that challenges and checks our REGISTER."""
    registrar = Sipp("carrier_registrar", tmp_path, timeout=30)
    await registrar.start()
    try:
        async with running_world(
            tmp_path,
            carrier_uri=f"sip:127.0.0.1:{registrar.port}",
            carrier_username=CARRIER_USER,
            carrier_password=CARRIER_PASSWORD,
            carrier_register=True,
            carrier_expires=120,
        ) as world:
            yield world, registrar
    finally:
        await registrar.stop()


async def wait_registered(world: World, timeout: float = 10) -> None:
    upstream = world.gateway.sip.upstream
    assert upstream is not None
    async with asyncio.timeout(timeout):
        while upstream.state != "REGISTERED":
            await asyncio.sleep(0.02)


async def test_registration_with_the_carrier(carrier_world, tmp_path: Path):
    world, registrar = carrier_world
    await registrar.guard(wait_registered(world))
    upstream = world.gateway.sip.upstream
    assert upstream is not None and upstream.granted == 60  # what the carrier granted
    await upstream.stop()  # un-REGISTER: the scenario's last step
    result = await registrar.wait()
    result.assert_ok()
    assert "Authorization: Digest" in result.messages and "Expires: 0" in result.messages


@asynccontextmanager
async def through_a_carrier(
    scenario: str, tmp_path: Path
) -> AsyncIterator[tuple[World, Sipp, str]]:
    """A PSTN number the simulator does not have, called through a SIPp carrier playing
    ``scenario`` (user "gw", password "carrier-secret"): the world, the carrier, the
    established call's id."""
    async with (
        Sipp(scenario, tmp_path, timeout=20) as carrier,
        running_world(
            tmp_path,
            carrier_uri=f"sip:127.0.0.1:{carrier.port}",
            carrier_username=CARRIER_USER,
            carrier_password=CARRIER_PASSWORD,
        ) as world,
    ):
        body = {
            "endpoint": {"type": "PHONE", "phoneNumber": "15551234567"},
            "from": "441134960999",
            "connectTimeout": 10,
            "callsConfigurationId": CONFIG_ID,
        }
        created = await world.api.post("/calls/1/calls", json=body)
        assert created.status_code == 201, created.text
        call_id = created.json()["id"]
        await carrier.guard(world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id))
        yield world, carrier, call_id


async def test_pstn_number_leaves_through_the_carrier(tmp_path: Path):
    """A number the simulated PSTN does not have goes to the carrier, which challenges the
    INVITE (401): the gateway answers with the carrier credentials."""
    async with through_a_carrier("carrier_uas_auth", tmp_path) as (world, carrier, call_id):
        await world.hangup(call_id)
        result = await carrier.wait()
        events = await world.sequence(call_id)
    result.assert_ok()
    assert "INVITE sip:15551234567@" in result.messages
    assert "\nAuthorization: Digest" in result.messages
    assert [e["type"] for e in events] == [
        "CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_FINISHED"
    ]  # fmt: skip
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "API")
    assert events[0]["properties"]["call"]["endpoint"] == {
        "type": "PHONE", "phoneNumber": "15551234567"
    }  # fmt: skip


async def test_simulated_numbers_stay_simulated_with_a_carrier(tmp_path: Path):
    async with running_world(tmp_path, carrier_uri="sip:127.0.0.1:9") as world:
        body = {
            "endpoint": {"type": "PHONE", "phoneNumber": "441134960001"},  # the busy number
            "from": "441134960999",
            "callsConfigurationId": CONFIG_ID,
        }
        created = await world.api.post("/calls/1/calls", json=body)
        call_id = created.json()["id"]
        events = await world.sequence(call_id)
    assert outcome(events) == ("BUSY", "BUSY", "ENDPOINT")


async def test_the_carrier_calls_one_of_our_numbers(tmp_path: Path):
    """An INVITE from the carrier's address is a PHONE call to the number it names."""
    async with running_world(tmp_path, carrier_uri="sip:127.0.0.1:9") as world:
        async with Sipp("uac_call", tmp_path, remote=world.remote, options=["-s", DID]) as sipp:
            call_id = await sipp.guard(world.received())
            await world.answer(call_id)
            result = await sipp.wait()
        events = await world.sequence(call_id)
    result.assert_ok()
    call = events[0]["properties"]["call"]
    assert call["endpoint"] == {"type": "PHONE", "phoneNumber": "15557654321"}
    assert (call["from"], call["to"], call["direction"]) == ("15557654321", DID, "INBOUND")
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")


async def test_x_headers_come_in_on_the_endpoint_and_go_out_on_the_invite(tmp_path: Path):
    async with running_world(tmp_path) as world:
        await world.static_trunk(source_hosts=["127.0.0.1"])
        sipp = Sipp("uac_custom_headers", tmp_path, remote=world.remote, options=["-s", DID])
        async with sipp:
            call_id = await sipp.guard(world.received())
            await world.answer(call_id)
            (await sipp.wait()).assert_ok()
        received = (await world.sequence(call_id))[0]["properties"]["call"]
        assert received["endpoint"]["customHeaders"] == {
            "X-Ticket": "4711", "x-campaign": "spring sale"
        }  # fmt: skip

        async with Sipp("uas_answer", tmp_path) as callee:
            trunk = await world.static_trunk(destination_hosts=[f"127.0.0.1:{callee.port}"])
            body = {
                "endpoint": {
                    "type": "SIP", "username": "bob", "sipTrunkId": trunk["id"],
                    "customHeaders": {"X-Campaign": "autumn"},
                },
                "from": "441134960999",
                "callsConfigurationId": CONFIG_ID,
            }  # fmt: skip
            created = await world.api.post("/calls/1/calls", json=body)
            assert created.status_code == 201, created.text
            outbound = created.json()["id"]
            await callee.guard(
                world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=outbound)
            )
            await world.hangup(outbound)
            result = await callee.wait()
        result.assert_ok()
        invite = result.messages.split("INVITE sip:bob@", 1)[1].split("\n\n", 1)[0]
        assert "X-Campaign: autumn" in invite
        refused = await world.api.post(
            "/calls/1/calls",
            json={**body, "endpoint": {**body["endpoint"], "customHeaders": {"Via": "x"}}},
        )
        assert refused.status_code == 400
        assert (
            "endpoint.customHeaders"
            in refused.json()["requestError"]["serviceException"]["validationErrors"]
        )


async def test_no_common_codec_is_refused_both_ways(tmp_path: Path):
    """An INVITE offering only G.729 gets 488 and raises no event; a callee answering with a
    codec we did not offer is hung up and its call FAILED with NO_COMMON_CODEC."""
    async with running_world(tmp_path) as world:
        await world.static_trunk(source_hosts=["127.0.0.1"])
        refused = await run_sipp(
            "uac_g729_only", tmp_path, remote=world.remote, options=["-s", DID]
        )
        refused.assert_ok()
        assert world.recorder.events() == []

        async with Sipp("uas_answer_g729", tmp_path) as callee:
            trunk = await world.static_trunk(destination_hosts=[f"127.0.0.1:{callee.port}"])
            call_id = await world.dial(trunk["id"])
            answer = await callee.wait()
        answer.assert_ok()
        events = await world.sequence(call_id)
    assert [e["type"] for e in events] == ["CALL_STARTED", "CALL_RINGING", "CALL_FAILED"]
    assert outcome(events) == ("FAILED", "NO_COMMON_CODEC", "PLATFORM")


async def test_a_re_invite_the_carrier_challenges_is_sent_again_with_credentials(tmp_path: Path):
    """Carriers may challenge in-dialog requests too: the re-INVITE that moves the call's
    media gets 401, and goes again with Authorization (the scenario verifies it). SIPp 3.6's
    verifyauth did not accept our Proxy-Authorization for a 407, so 401 is what is tested."""
    target = NativeMedia("127.0.0.2", 40000, "PCMU/8000", 0, telephone_event=101)
    scenario = "carrier_uas_auth_reinvite"
    async with through_a_carrier(scenario, tmp_path) as (world, carrier, call_id):
        answered = await carrier.guard(world.gateway.calls.redirect_media(call_id, target))
        assert (answered.address, answered.codec) == ("127.0.0.1", "PCMU/8000")
        await world.hangup(call_id)
        result = await carrier.wait()
    result.assert_ok()
    reinvites = result.messages.split("INVITE sip:alice@")[1:]
    assert len(reinvites) == 2 and "\nAuthorization: Digest" in reinvites[1]
