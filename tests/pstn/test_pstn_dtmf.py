"""Simulated phones key DTMF (in-band tones found by the detector, or RFC 4733 reported to the
core, both on the 100 ms + 100 ms schedule with ``w`` pauses) and take the DTMF the platform
sends them (out of band only when their number says so)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from gateway.app import Gateway
from gateway.core.bridging import MediaBridges
from gateway.core.leg import Leg
from gateway.media.dtmf_detect import DtmfDetector, DtmfTone
from gateway.media.plane import MediaPlane
from gateway.testing.app import prepare_app
from gateway.testing.audio import dominant_frequency, read_wav
from trunks.pstn.audio import PhoneAudio

PHONE = "15550003333"
RFC4733_PHONE = "15550004444"
SILENT_PHONE = "15550005555"
FRAME = 160
TIMEOUT = 5.0


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.005)


async def answered(api: httpx.AsyncClient, number: str = PHONE) -> str:
    """A call from the platform to a simulated phone, answered."""
    created = await api.post("/calls/1/calls", json={
        "endpoint": {"type": "PHONE", "phoneNumber": number},
        "from": "441134960999", "callsConfigurationId": "dtmf"})  # fmt: skip
    assert created.status_code == 201, created.text
    call_id = created.json()["id"]
    async with asyncio.timeout(TIMEOUT):
        while (await api.get(f"/calls/1/calls/{call_id}")).json()["state"] != "ESTABLISHED":
            await asyncio.sleep(0.01)
    return call_id


@pytest.fixture
async def phones(api: httpx.AsyncClient) -> None:
    fast = {"answerAfterMs": 10}
    await prepare_app(api, "http://127.0.0.1:9/none", "dtmf", simulated={
        PHONE: ("answer", fast),
        RFC4733_PHONE: ("answer", {**fast, "dtmf": "rfc4733"}),
        SILENT_PHONE: ("no-answer", {}),
    })  # fmt: skip


def detect(pcm: np.ndarray) -> list[DtmfTone]:
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME + 3 * FRAME, np.int16)])
    detector, found = DtmfDetector(), []
    for at in range(0, len(pcm), FRAME):
        found += detector.update(["phone"], pcm[None, at : at + FRAME])
    return [tone for tone in found if not tone.end]


def error_of(response: httpx.Response) -> dict:
    return response.json()["requestError"]["serviceException"]


async def test_bad_requests_name_the_field(gateway: Gateway, api, phones) -> None:
    call_id = await answered(api)
    for body, field in [
        ({"digits": "12x"}, "digits"),
        ({"digits": ""}, "digits"),
        ({"digits": 12}, "digits"),
        ({}, "digits"),
        ({"digits": "1" * 257}, "digits"),
        ({"digits": "1", "mode": "sip-info"}, "mode"),
        ({"digits": "1", "speed": 2}, "speed"),
    ]:
        response = await api.post(f"/pstn/1/calls/{call_id}/dtmf", json=body)
        assert response.status_code == 400, body
        assert field in error_of(response)["validationErrors"], (body, response.text)
    accepted = await api.post(
        f"/pstn/1/calls/{call_id}/dtmf", json={"digits": "0123456789*#ABCDwW"}
    )
    assert accepted.status_code == 202
    assert accepted.json() == {"callId": call_id, "digits": "0123456789*#ABCDwW", "mode": "inband"}


async def test_unknown_ended_and_unanswered_calls(gateway: Gateway, api, phones) -> None:
    unknown = await api.post("/pstn/1/calls/nope/dtmf", json={"digits": "1"})
    assert unknown.status_code == 404 and "nope" in error_of(unknown)["text"]
    assert (await api.get("/pstn/1/calls/nope/dtmf")).status_code == 404
    ringing = (await api.post("/calls/1/calls", json={
        "endpoint": {"type": "PHONE", "phoneNumber": SILENT_PHONE},
        "from": "441134960999", "callsConfigurationId": "dtmf"})).json()["id"]  # fmt: skip
    await until(lambda: gateway.pstn.get_call(ringing).state == "ringing")
    not_yet = await api.post(f"/pstn/1/calls/{ringing}/dtmf", json={"digits": "1"})
    assert not_yet.status_code == 400 and "not answered" in error_of(not_yet)["text"]
    call_id = await answered(api)
    await api.post(f"/pstn/1/calls/{call_id}/hangup")
    ended = await api.post(f"/pstn/1/calls/{call_id}/dtmf", json={"digits": "1"})
    assert ended.status_code == 404


async def test_rfc4733_keys_reach_the_core_on_the_schedule(gateway: Gateway, api, phones) -> None:
    call_id = await answered(api)
    loop = asyncio.get_running_loop()
    keyed: list[tuple[str, float]] = []

    def observe(leg: Leg, digit: str) -> None:
        if leg.id == call_id:
            keyed.append((digit, loop.time()))

    gateway.calls.observe_dtmf(observe)
    for digits in ("12w", "3"):  # the second request is typed after the first
        body = {"digits": digits, "mode": "rfc4733"}
        assert (await api.post(f"/pstn/1/calls/{call_id}/dtmf", json=body)).status_code == 202
    await until(lambda: len(keyed) == 3)
    assert [digit for digit, _ in keyed] == ["1", "2", "3"]
    start = keyed[0][1]
    after = [at - start for _, at in keyed]
    assert after[1] == pytest.approx(0.2, abs=0.06)  # 100 ms of key, 100 ms after it
    assert after[2] == pytest.approx(0.2 + 0.2 + 0.5, abs=0.06)  # and w: half a second
    await until(lambda: gateway.pstn.get_call(call_id).typing is None)


async def test_inband_keys_are_tones_in_front_of_the_source(gateway: Gateway, api, phones) -> None:
    """What the gateway reads from the phone's port: the keys the detector finds, in order
    and on time, then the phone's own tone again."""
    call_id = await answered(api)
    tone = {"type": "tone", "frequency": 440}
    assert (await api.put(f"/pstn/1/calls/{call_id}/source", json=tone)).status_code == 200
    port = gateway.calls.media_port(call_id)
    assert isinstance(port, PhoneAudio)
    before = [port.read() for _ in range(5)]
    response = await api.post(f"/pstn/1/calls/{call_id}/dtmf", json={"digits": "1w#9"})
    assert response.status_code == 202
    call = gateway.pstn.get_call(call_id)
    await until(lambda: not call.to_type)  # taken by the typing task: the tones are queued
    typed = 10 + 25 + 10 + 10  # frames: each key and its gap, w
    frames = [port.read() for _ in range(typed + 25)]
    pcm = np.concatenate([np.zeros(FRAME, np.int16) if f is None else f for f in frames])
    keys = detect(pcm[: typed * FRAME])
    assert [key.digit for key in keys] == ["1", "#", "9"]
    starts = [key.start - keys[0].start for key in keys]
    assert starts[1] == pytest.approx(8000 * (0.2 + 0.5), abs=80)
    assert starts[2] == pytest.approx(8000 * (0.2 + 0.5 + 0.2), abs=80)
    assert keys[0].start < 80  # at once, in front of the tone
    resumed = pcm[typed * FRAME :]
    assert abs(dominant_frequency(resumed, 8000) - 440) < 5
    assert abs(dominant_frequency(np.concatenate(before), 8000) - 440) < 5
    await until(lambda: call.typing is None)


async def test_a_new_source_replaces_the_keying_and_what_is_queued_follows(
    gateway: Gateway, api, phones
) -> None:
    call_id = await answered(api)
    port = gateway.calls.media_port(call_id)
    assert isinstance(port, PhoneAudio)
    keyed: list[str] = []
    gateway.calls.observe_dtmf(lambda leg, digit: keyed.append(digit))
    await api.post(f"/pstn/1/calls/{call_id}/dtmf", json={"digits": "123"})
    await api.post(f"/pstn/1/calls/{call_id}/dtmf", json={"digits": "9", "mode": "rfc4733"})
    call = gateway.pstn.get_call(call_id)
    await until(lambda: len(call.to_type) == 1)  # the tones are queued, the 9 waits
    assert port.read() is not None  # the first tone frame
    tone = {"type": "tone", "frequency": 440}
    assert (await api.put(f"/pstn/1/calls/{call_id}/source", json=tone)).status_code == 200
    await until(lambda: keyed == ["9"])  # the keying gave way, the next request was typed
    assert abs(dominant_frequency(np.concatenate([port.read() for _ in range(10)]), 8000) - 440) < 5


async def test_inband_keys_are_heard_across_a_bridge(gateway: Gateway, api, phones) -> None:
    """Through the media plane: the other phone hears the keys, found in its WAV."""
    keying, hearing = await answered(api), await answered(api)
    plane = MediaPlane()
    bridges = MediaBridges(gateway.calls, plane)
    assert bridges.join(keying, hearing)
    try:
        body = {"digits": "7*0"}
        assert (await api.post(f"/pstn/1/calls/{keying}/dtmf", json=body)).status_code == 202
        call = gateway.pstn.get_call(keying)
        await until(lambda: not call.to_type and call.typing is None)
    finally:
        bridges.part(keying, hearing)
        plane.close()
    wav = await api.get(f"/pstn/1/calls/{hearing}/heard")
    pcm, rate = read_wav(wav.content)
    assert rate == 8000
    assert [key.digit for key in detect(pcm)] == ["7", "*", "0"]


@pytest.mark.parametrize("who", ["phone", "platform"])
async def test_hanging_up_cancels_the_typing(gateway: Gateway, api, phones, who: str) -> None:
    call_id = await answered(api)
    body = {"digits": "WWWWW1", "mode": "rfc4733"}
    assert (await api.post(f"/pstn/1/calls/{call_id}/dtmf", json=body)).status_code == 202
    call = gateway.pstn.get_call(call_id)
    task = call.typing
    assert task is not None
    if who == "phone":
        await api.post(f"/pstn/1/calls/{call_id}/hangup")
    else:
        await api.post(f"/calls/1/calls/{call_id}/hangup", json={})
    await until(task.done)
    assert task.cancelled() and call.typing is None and not call.to_type


async def test_the_platform_sends_out_of_band_only_to_phones_that_take_it(
    gateway: Gateway, api, phones
) -> None:
    takes, hears = await answered(api, RFC4733_PHONE), await answered(api, PHONE)
    for key in "4#":
        assert gateway.calls.send_dtmf(takes, key, 100) is True
        assert gateway.calls.send_dtmf(hears, key, 100) is False  # the core plays tones
    assert (await api.get(f"/pstn/1/calls/{takes}/dtmf")).json() == {"received": "4#"}
    assert (await api.get(f"/pstn/1/calls/{hears}/dtmf")).json() == {"received": ""}
    listed = {n["number"]: n for n in (await api.get("/pstn/1/numbers")).json()["results"]}
    assert listed[RFC4733_PHONE]["options"]["dtmf"] == "rfc4733"
    assert "dtmf" not in listed[PHONE]["options"]  # in-band, the default
    bad = await api.post("/pstn/1/numbers", json={
        "number": "15550006666", "behaviour": "answer", "options": {"dtmf": "tones"}})  # fmt: skip
    assert bad.status_code == 400 and "options.dtmf" in error_of(bad)["validationErrors"]
