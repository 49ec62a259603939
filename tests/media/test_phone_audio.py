"""Simulated phones say and hear real audio: two calls bridged through the media plane hear each
other's tone and not their own (FFT), early media plays its announcement, and the simulator
API sets sources and returns what a phone heard as WAV."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from gateway.app import Gateway
from gateway.core.bridging import MediaBridges
from gateway.media.plane import MediaPlane
from gateway.testing.app import prepare_app
from gateway.testing.audio import dominant_frequency, read_wav, tone, tone_level
from tests.test_actions import wav_bytes as wav

DID = "441134960100"


async def answered_pair(api: httpx.AsyncClient) -> tuple[str, str]:
    """An inbound call answered by the app, and an outbound call to an answering phone."""
    await prepare_app(api, "http://127.0.0.1:9/none", "audio", numbers=[DID])
    await api.post("/pstn/1/numbers", json={"number": "15550002222", "behaviour": "answer",
                                            "options": {"answerAfterMs": 10}})  # fmt: skip
    caller = (await api.post("/pstn/1/calls", json={"from": "15557654321", "to": DID})).json()
    await api.post(f"/calls/1/calls/{caller['callId']}/answer", json={})
    return caller["callId"], await answered_call_to(api, "15550002222")


async def answered_call_to(api: httpx.AsyncClient, number: str) -> str:
    """The app calls a simulated number; once it answered: the call's id."""
    callee = await api.post("/calls/1/calls", json={
        "endpoint": {"type": "PHONE", "phoneNumber": number},
        "from": "441134960999", "callsConfigurationId": "audio"})  # fmt: skip
    callee_id = callee.json()["id"]
    async with asyncio.timeout(5):
        while (await api.get(f"/calls/1/calls/{callee_id}")).json()["state"] != "ESTABLISHED":
            await asyncio.sleep(0.01)
    return callee_id


async def run_ticks(plane: MediaPlane, count: int) -> None:
    target = plane.ticks + count
    async with asyncio.timeout(count * 0.02 + 5):
        while plane.ticks < target:
            await asyncio.sleep(0.02)


async def heard(api: httpx.AsyncClient, call_id: str) -> np.ndarray:
    response = await api.get(f"/pstn/1/calls/{call_id}/heard")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    pcm, rate = read_wav(response.content)
    assert rate == 8000
    return pcm


async def test_bridged_phones_hear_each_other_and_not_themselves(gateway: Gateway, api):
    caller, callee = await answered_pair(api)
    for call_id, frequency in ((caller, 440), (callee, 1000)):
        response = await api.put(f"/pstn/1/calls/{call_id}/source",
                                 json={"type": "tone", "frequency": frequency})  # fmt: skip
        assert response.status_code == 200, response.text
    plane = MediaPlane()
    bridges = MediaBridges(gateway.calls, plane)
    assert bridges.join(caller, callee)
    await run_ticks(plane, 50)
    bridges.part(caller, callee)
    plane.close()
    at_caller, at_callee = await heard(api, caller), await heard(api, callee)
    assert len(at_caller) >= 50 * 160
    assert abs(dominant_frequency(at_caller, 8000) - 1000) < 5
    assert abs(dominant_frequency(at_callee, 8000) - 440) < 5
    assert tone_level(at_caller, 8000, 440) < -40  # nobody hears themselves
    assert tone_level(at_callee, 8000, 1000) < -40


async def test_sources_and_bad_input(gateway: Gateway, api):
    caller, _ = await answered_pair(api)
    for body, field in [
        ({"type": "tone"}, "frequency"),
        ({"type": "tone", "frequency": 5000}, "frequency"),
        ({"type": "music"}, "type"),
        ({"type": "text"}, "text"),
        ({"type": "text", "text": "Hi", "language": "xx-yy"}, "language"),
        ({"type": "file"}, "fileId"),
        ({"type": "file", "fileId": "nope"}, "fileId"),
    ]:
        response = await api.put(f"/pstn/1/calls/{caller}/source", json=body)
        assert response.status_code == 400, body
        assert field in response.json()["requestError"]["serviceException"]["validationErrors"]
    arabic = {"type": "text", "text": "مرحبا", "language": "ar_xa"}  # any say language
    assert (await api.put(f"/pstn/1/calls/{caller}/source", json=arabic)).status_code == 200
    assert (await api.get("/pstn/1/calls/nope/heard")).status_code == 404
    assert (await api.put("/pstn/1/calls/nope/source", json={"type": "silence"})).status_code == 404


@pytest.mark.skipif(
    not __import__("shutil").which("espeak-ng"), reason="espeak-ng is not installed"
)
async def test_a_phone_can_speak(gateway: Gateway, api):
    caller, callee = await answered_pair(api)
    response = await api.put(f"/pstn/1/calls/{caller}/source",
                             json={"type": "text", "text": "Hello, this is a test."})  # fmt: skip
    assert response.status_code == 200, response.text
    plane = MediaPlane()
    MediaBridges(gateway.calls, plane).join(caller, callee)
    await run_ticks(plane, 75)
    plane.close()
    speech = await heard(api, callee)
    voiced = np.abs(speech.astype(np.int32)).mean()
    assert voiced > 300  # speech, not silence


async def test_a_file_source_and_a_numbers_source_from_its_answer(gateway: Gateway, api):
    """An uploaded file played by PUT source; a number whose ``source`` option is a tone sends
    it from the moment it answers, with nobody setting it."""
    caller, _ = await answered_pair(api)
    files = {"file": ("tone.wav", wav(tone(1200, 1.0, 8000)), "audio/wav")}
    uploaded = (await api.post("/calls/1/files", files=files)).json()["id"]
    source = {"type": "file", "fileId": uploaded, "loop": True}
    assert (await api.put(f"/pstn/1/calls/{caller}/source", json=source)).status_code == 200
    says_700 = {"answerAfterMs": 10, "source": {"type": "tone", "frequency": 700}}
    number = {"number": "15550003333", "behaviour": "answer", "options": says_700}
    added = await api.post("/pstn/1/numbers", json=number)
    assert added.status_code == 201 and added.json()["options"]["source"] == {
        "type": "tone",
        "frequency": 700.0,
    }
    second_id = await answered_call_to(api, "15550003333")
    plane = MediaPlane()
    bridges = MediaBridges(gateway.calls, plane)
    assert bridges.join(caller, second_id)
    await run_ticks(plane, 50)
    plane.close()
    assert abs(dominant_frequency(await heard(api, caller), 8000) - 700) < 5
    assert abs(dominant_frequency(await heard(api, second_id), 8000) - 1200) < 5
