"""Conference recordings with simulated phones: composed (one file of the room) or one file
per participant (from its join to its leave), stopped on request or by the conference's end,
composed on request (aligned by start times), listed, fetched and deleted; what the files
hold (each participant's tone), the exact event order and the JSON against the OpenAPI.

Also the conference hooks they (and say/play) stand on: what is played to a room is heard by
every participant, taps see one row per call, observers hear of joins, leaves and the end
before CONFERENCE_FINISHED."""

from __future__ import annotations

import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.app import Gateway
from gateway.media.compose import Part, compose_files
from gateway.media.player import Player
from gateway.testing.app import CALL_EVENTS, prepare_app
from gateway.testing.audio import dominant_frequency, read_wav, tone, tone_level, write_wav
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.contract import OpenApiContract, voice
from tests.media.test_conference_audio import say
from tests.media.test_dialog_audio import heard, run_ticks
from tests.test_conferences import (
    ANSWERS,
    CONFERENCE_EVENTS,
    CONFERENCES,
    ConferenceApp,
    phone,
)
from tests.test_dialogs import CONFIG, DID, NUMBERS
from tests.test_recordings import SpecChecked

RATE = 8000
RECORDINGS = "/calls/1/recordings/conferences"
AUDIO = {"recordingType": "AUDIO"}
RECORDING_EVENTS = [
    *(f"CONFERENCE_RECORDING_{what}" for what in ("STARTED", "STOPPED", "READY", "FAILED")),
    "CONFERENCE_RECORDING_DELETED",
    "CONFERENCE_COMPOSITION_FINISHED",
    "CONFERENCE_COMPOSITION_FAILED",
]


class RecordedConferenceApp(SpecChecked, ConferenceApp):
    def __init__(self, api: httpx.AsyncClient, recorder: WebhookRecorder, spec: OpenApiContract):
        super().__init__(api, recorder)
        self.spec = spec

    async def recording_event(self, conference_id: str, event_type: str) -> dict[str, Any]:
        found = await self.recorder.wait_for(
            types=[event_type], predicate=lambda e: e.get("conferenceId") == conference_id
        )
        return found[-1]

    def recording_steps(self, conference_id: str) -> list[str]:
        """The conference's recording events and its end, in publish order."""
        return [
            e["type"]
            for e in self.published()
            if e.get("conferenceId") == conference_id
            and ("RECORDING" in e["type"] or "COMPOSITION" in e["type"] or "FINISHED" in e["type"])
            and not e["type"].startswith("CALL_")
        ]


@pytest.fixture
async def app(api: httpx.AsyncClient, reference: Path) -> AsyncIterator[RecordedConferenceApp]:
    async with WebhookRecorder() as recorder:
        events = [*CALL_EVENTS, *CONFERENCE_EVENTS, *RECORDING_EVENTS]
        await prepare_app(
            api, recorder.url, CONFIG, numbers=[DID], events=events, simulated=NUMBERS
        )
        yield RecordedConferenceApp(api, recorder, voice(reference))


async def add_calls(app: ConferenceApp, conference_id: str, size: int) -> list[str]:
    """``size`` new calls into the conference, once every one of them has joined."""
    calls = []
    for _ in range(size):
        added = await app.api.post(
            f"{CONFERENCES}/{conference_id}/call", json={"callRequest": phone(ANSWERS)}
        )
        assert added.status_code == 200, added.text
        call_id = added.json()["call"]["id"]
        await app.wait_conf(conference_id, "PARTICIPANT_JOINED", call_id)
        calls.append(call_id)
    return calls


async def test_a_source_played_to_a_room_is_heard_by_all_and_survives_the_bridge(
    app: ConferenceApp, gateway: Gateway
):
    conferences = gateway.conferences
    conference_id = (await app.conference())["id"]
    beep = Player(tone(1500, 1.0), loops=1000)
    assert conferences.play(conference_id, beep)  # no bridge yet: kept on the room
    assert not conferences.play("no-such-conference", beep)
    seen: list[tuple[str, ...]] = []
    changes: list[tuple[str, str, bool]] = []
    ended: list[tuple[str, bool]] = []
    conferences.tap(conference_id, lambda ids, frames: seen.append(tuple(ids)))
    conferences.observe_participants(lambda *change: changes.append(change))
    conferences.observe_end(lambda cid: ended.append((cid, conferences.get(cid).end_time is None)))

    calls = await add_calls(app, conference_id, 2)
    await run_ticks(gateway, 30)
    for call_id in calls:
        assert tone_level(await heard(app.api, call_id, 0.3), RATE, 1500) > -25
    assert tuple(calls) in seen and conferences.participants(conference_id) == calls
    assert changes == [(conference_id, call_id, True) for call_id in calls]

    conferences.unplay(conference_id, beep)
    await run_ticks(gateway, 10)
    for call_id in calls:
        assert tone_level(await heard(app.api, call_id, 0.1), RATE, 1500) < -50
    await app.api.post(f"{CONFERENCES}/{conference_id}/hangup")
    await app.wait_conf(conference_id, "CONFERENCE_FINISHED")
    assert ended == [(conference_id, True)]  # told before the end was recorded
    assert {c[1] for c in changes if not c[2]} == set(calls)
    assert not conferences.play(conference_id, beep)
    assert np.all(np.array([len(s) for s in seen]) <= 2)


def tones_of(pcm: np.ndarray, tones: dict[str, float]) -> dict[str, float]:
    return {call_id: tone_level(pcm, RATE, frequency) for call_id, frequency in tones.items()}


async def test_a_composed_conference_recording_holds_the_room(
    app: RecordedConferenceApp, gateway: Gateway
):
    conference = await app.conference(name="board")
    conference_id = conference["id"]
    first, second = await add_calls(app, conference_id, 2)
    tones = {first: 500.0, second: 900.0}
    for call_id, frequency in tones.items():
        await say(app.api, call_id, frequency)
    path = f"{CONFERENCES}/{conference_id}"
    body = {**AUDIO, "conferenceComposition": {"enabled": True}, "customData": {"k": "v"}}
    assert await app.call("POST", f"{path}/start-recording", json=body) == {"status": "PENDING"}
    began = time.monotonic()
    await app.recording_event(conference_id, "CONFERENCE_RECORDING_STARTED")
    await run_ticks(gateway, 40)
    (third,) = await add_calls(app, conference_id, 1)  # heard in the same file from its join
    tones[third] = 1300.0
    await say(app.api, third, 1300)
    await run_ticks(gateway, 40)
    await app.call("POST", f"{path}/stop-recording")
    window = time.monotonic() - began
    ready = await app.recording_event(conference_id, "CONFERENCE_RECORDING_READY")

    assert app.recording_steps(conference_id) == [
        "CONFERENCE_RECORDING_STARTED",
        "CONFERENCE_RECORDING_STOPPED",
        "CONFERENCE_RECORDING_READY",
    ]
    started = await app.recording_event(conference_id, "CONFERENCE_RECORDING_STARTED")
    assert started["properties"] == {
        "recordingType": "AUDIO",
        "composition": True,
        "customData": {"k": "v"},
    }
    assert "callId" not in started and started["callsConfigurationId"] == CONFIG
    recording = ready["properties"]["recording"]
    assert (recording["conferenceId"], recording["conferenceName"]) == (conference_id, "board")
    assert "callRecordings" not in recording
    (file,) = recording["composedFiles"]
    pcm = await app.download(file["id"])
    assert abs(len(pcm) / RATE - window) < 0.3 and file["duration"] == round(len(pcm) / RATE)
    early, late = pcm[int(0.2 * RATE) : int(0.7 * RATE)], pcm[-int(0.5 * RATE) :]
    assert all(level > -25 for level in tones_of(late, tones).values())
    assert tones_of(early, tones)[third] < -40  # not there yet
    app.assert_events_conform()

    one = await app.call("GET", f"{RECORDINGS}/{conference_id}")
    assert one["composedFiles"][0]["customData"] == {"k": "v"}
    for params, found in (
        ({"conferenceName": "board"}, [conference_id]),
        ({"conferenceName": "other"}, []),
        ({"callId": third}, [conference_id]),
        ({"composition": True}, [conference_id]),
        ({"composition": False}, []),
    ):
        page = await app.call("GET", RECORDINGS, params=params)
        assert [r["conferenceId"] for r in page["results"]] == found, params
    refused = await app.api.post(f"{CONFERENCES}/{conference_id}/stop-recording")
    assert refused.status_code == 400 and "not being recorded" in refused.text


async def test_one_file_per_participant_from_join_to_leave_then_composed(
    app: RecordedConferenceApp, gateway: Gateway
):
    conference_id = (await app.conference())["id"]
    first, second = await add_calls(app, conference_id, 2)
    tones = {first: 500.0, second: 900.0}
    for call_id, frequency in tones.items():
        await say(app.api, call_id, frequency)
    path = f"{CONFERENCES}/{conference_id}"
    await app.call("POST", f"{path}/start-recording", json=AUDIO)
    await app.recording_event(conference_id, "CONFERENCE_RECORDING_STARTED")
    await run_ticks(gateway, 40)
    (third,) = await add_calls(app, conference_id, 1)
    tones[third] = 1300.0
    await say(app.api, third, 1300)
    await run_ticks(gateway, 40)
    await app.call("DELETE", f"{path}/call/{first}")  # its file ends; the others go on
    await app.wait_conf(conference_id, "PARTICIPANT_REMOVED", first)
    await run_ticks(gateway, 40)
    await app.call("POST", f"{path}/hangup")  # the conference's end stops the recording
    ready = await app.recording_event(conference_id, "CONFERENCE_RECORDING_READY")
    assert app.recording_steps(conference_id) == [
        "CONFERENCE_RECORDING_STARTED",
        "CONFERENCE_RECORDING_STOPPED",
        "CONFERENCE_FINISHED",
        "CONFERENCE_RECORDING_READY",
    ]
    recording = ready["properties"]["recording"]
    assert "composedFiles" not in recording
    by_call = {r["callId"]: r for r in recording["callRecordings"]}
    assert set(by_call) == set(tones)
    lengths = {}
    for call_id, frequency in tones.items():
        (file,) = by_call[call_id]["files"]
        pcm = await app.download(file["id"])
        lengths[call_id] = len(pcm) / RATE
        assert abs(dominant_frequency(pcm[int(0.1 * RATE) :], RATE) - frequency) < 5, call_id
        others = [f for c, f in tones.items() if c != call_id]
        assert all(tone_level(pcm, RATE, f) < -40 for f in others), call_id
    assert 1.4 < lengths[first] < 2.0  # 80 ticks, to its leave
    assert 1.4 < lengths[third] < 2.0  # from its join, 80 ticks, to the end
    assert lengths[second] > lengths[first] + 0.6  # all along
    app.assert_events_conform()

    began = time.monotonic()
    body = {"deleteCallRecordings": False}
    await app.call("POST", f"{RECORDINGS}/{conference_id}/compose", json=body)
    done = await app.recording_event(conference_id, "CONFERENCE_COMPOSITION_FINISHED")
    composed_in = time.monotonic() - began
    recording = done["properties"]["recording"]
    (composed,) = recording["composedFiles"]
    assert {r["callId"] for r in recording["callRecordings"]} == set(tones)  # kept
    pcm = await app.download(composed["id"])
    assert abs(len(pcm) / RATE - lengths[second]) < 0.1
    start = {
        r["callId"]: r["files"][0]["startTime"] for r in recording["callRecordings"]
    }  # aligned by these: the third's tone begins where its file began
    assert start[second] <= start[third]
    early, late = pcm[int(0.2 * RATE) : int(0.7 * RATE)], pcm[-int(0.5 * RATE) :]
    assert tones_of(early, tones)[third] < -40 and tones_of(early, tones)[first] > -25
    assert tones_of(late, tones)[first] < -40 and tones_of(late, tones)[third] > -25
    assert composed_in < 2, composed_in
    app.assert_events_conform()

    deleted = await app.call("DELETE", f"{RECORDINGS}/{conference_id}")
    assert deleted["conferenceId"] == conference_id
    event = await app.recording_event(conference_id, "CONFERENCE_RECORDING_DELETED")
    assert "properties" not in event and "callId" not in event
    await app.call("GET", f"{RECORDINGS}/{conference_id}", 404)
    assert list((gateway.settings.data_dir / "recordings").iterdir()) == []


async def test_refused_conference_recording_requests(app: RecordedConferenceApp):
    conference_id = (await app.conference())["id"]
    path = f"{CONFERENCES}/{conference_id}"
    for bad in ({}, {"recordingType": "VIDEO"}, {**AUDIO, "conferenceComposition": {"x": 1}}):
        response = await app.api.post(f"{path}/start-recording", json=bad)
        assert response.status_code == 400, bad
    missing = await app.api.post(f"{CONFERENCES}/nope/start-recording", json=AUDIO)
    assert missing.status_code == 404
    await app.call("POST", f"{path}/start-recording", json=AUDIO)
    again = await app.api.post(f"{path}/start-recording", json=AUDIO)
    assert again.status_code == 400 and "already being recorded" in again.text
    compose = await app.api.post(f"{RECORDINGS}/{conference_id}/compose", json={})
    assert compose.status_code == 404  # nothing recorded yet
    await app.call("POST", f"{path}/stop-recording")
    failed = await app.recording_event(conference_id, "CONFERENCE_RECORDING_FAILED")
    assert "Nobody" in failed["properties"]["reason"]  # an empty room: no file
    app.assert_events_conform()


def test_composing_fifteen_participants_summed_and_per_channel(tmp_path: Path):
    """15 participants x 60 s, each starting 1 s after the previous: summed and per channel."""
    parts = []
    for n in range(15):
        path = tmp_path / f"p{n}.wav"
        write_wav(path, tone(300 + 200 * n, 60.0, amplitude=0.05), RATE)
        parts.append(Part(path, n * RATE, n))
    began = time.perf_counter()
    size = compose_files([Part(p.path, p.offset) for p in parts], tmp_path / "mixed.wav")
    mixed_in = time.perf_counter() - began
    began = time.perf_counter()
    compose_files(parts, tmp_path / "multi.wav", channels=15)
    multi_in = time.perf_counter() - began
    print(f"compose 15 x 60 s: mixed {mixed_in:.2f} s, 15 channels {multi_in:.2f} s")
    mixed, _ = read_wav(tmp_path / "mixed.wav")
    assert size == 44 + 2 * len(mixed) and len(mixed) == 74 * RATE
    assert tone_level(mixed[: RATE // 2], RATE, 300) > -30
    assert tone_level(mixed[: RATE // 2], RATE, 500) < -60  # the second starts at 1 s
    assert tone_level(mixed[-RATE // 2 :], RATE, 3100) > -30
    with wave.open(str(tmp_path / "multi.wav"), "rb") as wav:
        assert wav.getnchannels() == 15
        channels = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, 15)
    for n in (0, 7, 14):
        own = channels[n * RATE : (n + 1) * RATE, n]
        assert abs(dominant_frequency(own, RATE) - (300 + 200 * n)) < 5
        assert not channels[: n * RATE, n].any()  # silent before its start
    assert not list(tmp_path.glob("*.part"))


async def test_a_conference_created_with_recording_records_from_its_start(
    app: RecordedConferenceApp, gateway: Gateway
):
    body = {**AUDIO, "conferenceComposition": {"enabled": True}}
    conference = await app.conference(name="recorded", recording=body)
    conference_id = conference["id"]
    await app.recording_event(conference_id, "CONFERENCE_RECORDING_STARTED")
    (first,) = await add_calls(app, conference_id, 1)
    await say(app.api, first, 700)
    await run_ticks(gateway, 40)
    await app.call("POST", f"{CONFERENCES}/{conference_id}/hangup")
    ready = await app.recording_event(conference_id, "CONFERENCE_RECORDING_READY")
    (file,) = ready["properties"]["recording"]["composedFiles"]
    pcm = await app.download(file["id"])
    assert tones_of(pcm[-int(0.5 * RATE) :], {first: 700.0})[first] > -25
