"""Answering machine detection through real calls to simulated phones: people, machines with and
without a beep, silence, line noise from an uploaded file; the events, their order and JSON
shapes (against the OpenAPI), the call's ``machineDetection``, failures when the call ends or
moves first, detection in dialogs and conferences, and requests that are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.app import Gateway
from gateway.testing.app import CALL_EVENTS, prepare_app
from gateway.testing.webhook_recorder import WebhookRecorder
from gateway.timeutil import parse_time
from tests.conftest import API_KEY, fast_settings
from tests.contract import voice
from tests.test_actions import ActionApp, wav_bytes
from tests.test_dialogs import CONFIG, DIALOG_EVENTS, DID, error_of

CALLS = "/calls/1/calls"
DETECTION_EVENTS = [
    "MACHINE_DETECTION_FINISHED",
    "MACHINE_DETECTION_FAILED",
    "MACHINE_MESSAGE_DETECTION_FINISHED",
    "MACHINE_MESSAGE_DETECTION_FAILED",
]
CONFERENCE_EVENTS = [
    "CONFERENCE_CREATED",
    "CONFERENCE_FINISHED",
    "PARTICIPANT_JOINED",
    "PARTICIPANT_REMOVED",
]
PERSON = "15550700001"
MACHINE_WITH_BEEP = "15550700002"
MACHINE_WITHOUT_BEEP = "15550700003"
SILENT = "15550700004"
TALKS_ON = "15550700005"  # a machine that never stops talking
RINGS = "15550700006"
NUMBERS: dict[str, tuple[str, dict[str, Any]]] = {
    PERSON: ("human", {"answerAfterMs": 50, "seed": 11}),
    MACHINE_WITH_BEEP: ("machine", {"answerAfterMs": 50, "seed": 13, "beep": 1}),
    MACHINE_WITHOUT_BEEP: ("machine", {"answerAfterMs": 50, "seed": 14, "beep": 0}),
    SILENT: ("answer", {"answerAfterMs": 50}),
    TALKS_ON: (
        "answer",
        {
            "answerAfterMs": 50,
            "source": {
                "type": "text",
                "loop": True,
                "text": "Thank you for calling. All our agents are busy. Please stay on the line "
                "and your call will be answered in the order it was received.",
            },
        },
    ),
    RINGS: ("no-answer", {}),
}


class DetectionApp(ActionApp):
    async def dial(self, number: str, status: int = 201, **detection: Any) -> str:
        """An outbound call to ``number`` with machine detection (``detection`` extra fields)."""
        body = {
            "endpoint": {"type": "PHONE", "phoneNumber": number},
            "from": "441134960999",
            "callsConfigurationId": CONFIG,
            "customData": {"campaign": "amd"},
            "machineDetection": {"enabled": True, **detection},
        }
        created = await self.call("POST", CALLS, status, json=body)
        return created["id"]

    async def into_a_conference(self, number: str, **detection: Any) -> tuple[str, str]:
        """An answered inbound call connected with a new call to ``number`` (with machine
        detection) in a new conference: the new call's id and the conference's."""
        parent = await self.inbound()
        await self.call("POST", f"{CALLS}/{parent}/answer", json={})
        body = {
            "callRequest": {
                "endpoint": {"type": "PHONE", "phoneNumber": number},
                "from": "441134960999",
                "machineDetection": {"enabled": True, **detection},
            },
            "conferenceRequest": {},
        }
        connected = await self.call("POST", f"{CALLS}/{parent}/connect", json=body)
        return connected["call"]["id"], connected["conference"]["id"]

    async def detected(self, call_id: str, event_type: str, timeout: float = 15) -> dict:
        found = await self.recorder.wait_for(types=[event_type], call_id=call_id, timeout=timeout)
        return found[-1]

    def sequence(self, call_id: str) -> list[str]:
        return [e["type"] for e in self.recorder.events() if e.get("callId") == call_id]

    def own_events(self, call_id: str) -> list[str]:
        """The call's own events (its ordering key; a conference's events have their own)."""
        return [t for t in self.sequence(call_id) if t.startswith(("CALL_", "MACHINE_"))]

    async def hang_up(self, call_id: str) -> None:
        await self.call("POST", f"{CALLS}/{call_id}/hangup", json={})
        await self.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)

    def nothing_left(self) -> None:
        """Detection left nothing behind: no run, no tap on a leg or a room."""
        assert self.gateway.detection.running == 0
        assert not self.gateway.bridges._taps
        assert not any(room.taps for room in self.gateway.conferences._rooms.values())


@pytest.fixture
async def app(
    api: httpx.AsyncClient, reference: Path, gateway: Gateway
) -> AsyncIterator[DetectionApp]:
    async with WebhookRecorder() as recorder:
        events = [*CALL_EVENTS, *DIALOG_EVENTS, *DETECTION_EVENTS, *CONFERENCE_EVENTS]
        await prepare_app(
            api, recorder.url, CONFIG, numbers=[DID], events=events, simulated=NUMBERS
        )
        yield DetectionApp(api, recorder, voice(reference), gateway)


def result(event: dict) -> str:
    return event["properties"]["detectionResult"]


async def test_a_person_is_human_within_the_detection_time(app: DetectionApp):
    call_id = await app.dial(PERSON, messageDetectionTimeout=20)
    finished = await app.detected(call_id, "MACHINE_DETECTION_FINISHED")
    assert result(finished) == "HUMAN"
    rating = finished["properties"]["confidenceRating"]
    assert rating["HUMAN"] > rating["MACHINE"] and all(0 <= v <= 1 for v in rating.values())
    assert finished["properties"]["customData"] == {"campaign": "amd"}
    call = await app.call("GET", f"{CALLS}/{call_id}")
    assert call["machineDetection"] == {
        "detectionResult": "HUMAN",
        "confidenceRating": rating,
    }
    app.nothing_left()  # a person: no message to wait for, the tap is gone at once
    await app.hang_up(call_id)
    assert app.sequence(call_id) == [
        "CALL_STARTED",
        "CALL_RINGING",
        "CALL_ESTABLISHED",
        "MACHINE_DETECTION_FINISHED",
        "CALL_FINISHED",
    ]
    history = await app.call("GET", f"{CALLS}/{call_id}/history")
    assert history["machineDetection"]["detectionResult"] == "HUMAN"
    app.assert_events_conform()


async def test_a_machine_with_a_beep_then_its_beep(app: DetectionApp):
    call_id = await app.dial(MACHINE_WITH_BEEP, messageDetectionTimeout=30)
    finished = await app.detected(call_id, "MACHINE_DETECTION_FINISHED")
    assert result(finished) == "MACHINE"
    message = await app.detected(call_id, "MACHINE_MESSAGE_DETECTION_FINISHED", timeout=35)
    assert result(message) == "BEEP"
    app.nothing_left()
    await app.hang_up(call_id)
    assert app.sequence(call_id)[2:] == [
        "CALL_ESTABLISHED",
        "MACHINE_DETECTION_FINISHED",
        "MACHINE_MESSAGE_DETECTION_FINISHED",
        "CALL_FINISHED",
    ]
    app.assert_events_conform()


@pytest.mark.parametrize(
    ("number", "timeout", "ending"),
    [(MACHINE_WITHOUT_BEEP, 30, "SILENCE"), (TALKS_ON, 6, "TIMEOUT")],
    ids=["a greeting without a beep ends in silence", "a greeting that never ends times out"],
)
async def test_how_a_machines_message_ends(
    app: DetectionApp, number: str, timeout: int, ending: str
):
    call_id = await app.dial(number, messageDetectionTimeout=timeout)
    assert result(await app.detected(call_id, "MACHINE_DETECTION_FINISHED")) == "MACHINE"
    message = await app.detected(call_id, "MACHINE_MESSAGE_DETECTION_FINISHED", timeout + 5)
    assert result(message) == ending
    app.nothing_left()
    await app.hang_up(call_id)


async def test_without_a_message_timeout_a_machine_ends_detection(app: DetectionApp):
    call_id = await app.dial(MACHINE_WITH_BEEP)
    assert result(await app.detected(call_id, "MACHINE_DETECTION_FINISHED")) == "MACHINE"
    app.nothing_left()
    await app.hang_up(call_id)
    assert "MACHINE_MESSAGE_DETECTION_FINISHED" not in app.sequence(call_id)


async def test_silence_is_decided_at_the_detection_time(app: DetectionApp):
    call_id = await app.dial(SILENT, detectionTime=2)
    established = await app.detected(call_id, "CALL_ESTABLISHED")
    finished = await app.detected(call_id, "MACHINE_DETECTION_FINISHED", timeout=5)
    assert result(finished) == "HUMAN"  # nobody speaks first but a person waiting
    assert seconds_between(established, finished) == pytest.approx(2.0, abs=0.5)
    await app.hang_up(call_id)


async def test_line_noise_from_an_uploaded_file_is_no_greeting(app: DetectionApp):
    """A number whose source is an uploaded WAV: the detector hears it through a real call."""
    rng = np.random.default_rng(5)
    noise = (rng.normal(0, 600, 8000 * 8)).astype(np.int16)
    files = {"file": ("noise.wav", wav_bytes(noise), "audio/wav")}
    uploaded = (await app.api.post("/calls/1/files", files=files)).json()["id"]
    number = {
        "number": "15550700009",
        "behaviour": "answer",
        "options": {"answerAfterMs": 50, "source": {"type": "file", "fileId": uploaded}},
    }
    assert (await app.api.post("/pstn/1/numbers", json=number)).status_code == 201
    call_id = await app.dial(number["number"], detectionTime=2.5)
    finished = await app.detected(call_id, "MACHINE_DETECTION_FINISHED", timeout=6)
    assert result(finished) == "HUMAN"  # steady noise is the line's floor, not speech
    await app.hang_up(call_id)


async def test_a_number_whose_file_was_deleted_answers_with_silence(app: DetectionApp):
    """The file a number's source names is deleted after the number was made: the phone still
    answers (silence, the failure in its log, its state untouched), detection still decides."""
    files = {"file": ("greeting.wav", wav_bytes(np.zeros(8000, np.int16)), "audio/wav")}
    uploaded = (await app.api.post("/calls/1/files", files=files)).json()["id"]
    number = {
        "number": "15550700010",
        "behaviour": "answer",
        "options": {"answerAfterMs": 50, "source": {"type": "file", "fileId": uploaded}},
    }
    assert (await app.api.post("/pstn/1/numbers", json=number)).status_code == 201
    assert (await app.api.delete(f"/calls/1/files/{uploaded}")).status_code == 200
    call_id = await app.dial(number["number"], detectionTime=1.5)
    finished = await app.detected(call_id, "MACHINE_DETECTION_FINISHED", timeout=6)
    assert result(finished) == "HUMAN"
    phone = (await app.api.get(f"/pstn/1/calls/{call_id}")).json()
    assert phone["state"] == "connected"
    assert any("its source failed" in entry["event"] for entry in phone["log"]), phone["log"]
    await app.hang_up(call_id)


async def test_a_hangup_during_detection_fails_it_before_the_call_ends(app: DetectionApp):
    call_id = await app.dial(SILENT, detectionTime=5)
    await app.detected(call_id, "CALL_ESTABLISHED")
    await app.hang_up(call_id)
    assert app.sequence(call_id)[-2:] == ["MACHINE_DETECTION_FAILED", "CALL_FINISHED"]
    failed = app.event("MACHINE_DETECTION_FAILED", call_id)
    assert "ended" in failed["properties"]["reason"]
    app.nothing_left()
    app.assert_events_conform()


async def test_a_hangup_while_the_message_runs_fails_the_message_detection(app: DetectionApp):
    call_id = await app.dial(TALKS_ON, messageDetectionTimeout=30)
    assert result(await app.detected(call_id, "MACHINE_DETECTION_FINISHED")) == "MACHINE"
    await app.hang_up(call_id)
    assert app.sequence(call_id)[-3:] == [
        "MACHINE_DETECTION_FINISHED",
        "MACHINE_MESSAGE_DETECTION_FAILED",
        "CALL_FINISHED",
    ]
    app.nothing_left()
    app.assert_events_conform()


async def test_stopping_the_gateway_fails_detection_before_the_call_ends(
    tmp_path: Path, reference: Path
):
    """A stop with detection running: the run goes, and its FAILED precedes the call's end
    (delivered by the next run: a stop leaves what it could not send pending)."""
    settings = fast_settings(tmp_path / "data")
    headers = {"Authorization": f"App {API_KEY}"}
    async with WebhookRecorder() as recorder:
        first = Gateway.build(settings)
        await first.start()
        try:
            transport = httpx.ASGITransport(app=first.api)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://gw", headers=headers
            ) as api:
                events = [*CALL_EVENTS, *DETECTION_EVENTS]
                await prepare_app(
                    api, recorder.url, CONFIG, numbers=[DID], events=events, simulated=NUMBERS
                )
                app = DetectionApp(api, recorder, voice(reference), first)
                call_id = await app.dial(SILENT, detectionTime=5)
                await app.detected(call_id, "CALL_ESTABLISHED")
                assert first.detection.running == 1
        finally:
            await first.stop()
        assert first.detection.running == 0 and not first.bridges._taps
        again = Gateway.build(settings)
        await again.start()
        try:
            await recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
        finally:
            await again.stop()
        delivered = [e["type"] for e in recorder.events() if e.get("callId") == call_id]
        once_each = list(dict.fromkeys(delivered))  # a request cut short is sent again
        assert once_each[-2:] == ["MACHINE_DETECTION_FAILED", "CALL_FINISHED"], delivered


async def test_a_call_that_is_never_answered_is_never_analysed(app: DetectionApp):
    call_id = await app.dial(RINGS)
    await app.detected(call_id, "CALL_RINGING")
    await app.call("POST", f"{CALLS}/{call_id}/hangup", json={})
    await app.detected(call_id, "CALL_FAILED")
    assert not any(t.startswith("MACHINE_") for t in app.sequence(call_id))
    app.nothing_left()


async def test_a_dialog_child_is_analysed_and_the_caller_hears_it(app: DetectionApp):
    parent = await app.inbound()
    body = {
        "parentCallId": parent,
        "childCallRequest": {
            "endpoint": {"type": "PHONE", "phoneNumber": MACHINE_WITH_BEEP},
            "from": "441134960999",
            "machineDetection": {"enabled": True, "messageDetectionTimeout": 30},
        },
    }
    dialog = await app.call("POST", "/calls/1/dialogs", 201, json=body)
    child = dialog["childCall"]["id"]
    assert result(await app.detected(child, "MACHINE_DETECTION_FINISHED")) == "MACHINE"
    heard = await app.heard(parent)  # the caller hears the greeting through the dialog
    frames = heard[: len(heard) // 160 * 160].reshape(-1, 160)
    spoken = np.sqrt((frames**2).mean(axis=1)) > 600  # the line's floor is about 100
    assert spoken.sum() >= 20, spoken.sum()  # 0.4 s of speech at least
    assert result(await app.detected(child, "MACHINE_MESSAGE_DETECTION_FINISHED", 35)) == "BEEP"
    app.nothing_left()
    await app.call("POST", f"/calls/1/dialogs/{dialog['id']}/hangup", json={})
    await app.recorder.wait_for(types=["CALL_FINISHED"], call_id=parent)
    app.assert_events_conform()


async def test_a_new_call_into_a_conference_is_analysed_there(app: DetectionApp):
    new_call, conference = await app.into_a_conference(PERSON)
    assert result(await app.detected(new_call, "MACHINE_DETECTION_FINISHED")) == "HUMAN"
    app.nothing_left()
    await app.call("POST", f"/calls/1/conferences/{conference}/hangup")
    await app.recorder.wait_for(types=["CONFERENCE_FINISHED"])


async def test_a_call_moved_into_a_conference_fails_detection(app: DetectionApp):
    """Heard alone, then added to a conference: its own tap goes before it joins the room."""
    call_id = await app.dial(SILENT, detectionTime=5)
    await app.detected(call_id, "CALL_ESTABLISHED")
    assert app.gateway.detection.running == 1
    conference = await app.call(
        "POST", "/calls/1/conferences", 201, json={"name": "amd", "callsConfigurationId": CONFIG}
    )
    await app.call("PUT", f"/calls/1/conferences/{conference['id']}/call/{call_id}", json={})
    failed = await app.detected(call_id, "MACHINE_DETECTION_FAILED", timeout=3)
    assert "moved into a conference" in failed["properties"]["reason"]
    await app.recorder.wait_for(types=["PARTICIPANT_JOINED"], call_id=call_id)
    app.nothing_left()
    await app.call("POST", f"/calls/1/conferences/{conference['id']}/hangup")
    await app.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
    assert app.own_events(call_id)[-2:] == ["MACHINE_DETECTION_FAILED", "CALL_FINISHED"]


async def test_a_call_removed_from_its_conference_fails_detection(app: DetectionApp):
    """Heard through the room: once out of it nothing more is heard, so detection fails at
    once (not only when the call ends) and leaves no tap on the room."""
    new_call, conference = await app.into_a_conference(SILENT, detectionTime=5)
    await app.recorder.wait_for(types=["PARTICIPANT_JOINED"], call_id=new_call)
    assert app.gateway.detection.running == 1
    await app.call("DELETE", f"/calls/1/conferences/{conference}/call/{new_call}")
    failed = await app.detected(new_call, "MACHINE_DETECTION_FAILED", timeout=3)
    assert "left the conference" in failed["properties"]["reason"]
    await app.recorder.wait_for(types=["PARTICIPANT_REMOVED"], call_id=new_call)
    assert "CALL_FINISHED" not in app.sequence(new_call)  # it goes on, out of the conference
    app.nothing_left()
    await app.hang_up(new_call)
    assert app.own_events(new_call)[-2:] == ["MACHINE_DETECTION_FAILED", "CALL_FINISHED"]


@pytest.mark.parametrize(
    ("detection", "field"),
    [
        ({"enabled": True, "detectionTime": 0.5}, "machineDetection.detectionTime"),
        ({"enabled": True, "detectionTime": 5.5}, "machineDetection.detectionTime"),
        (
            {"enabled": True, "messageDetectionTimeout": 61},
            "machineDetection.messageDetectionTimeout",
        ),
        ({"enabled": True, "messageDetectionTimeout": 3}, "machineDetection"),  # < detectionTime
        ({"detectionTime": 2}, "machineDetection.enabled"),
        ({"enabled": True, "beep": True}, "machineDetection.beep"),
    ],
)
async def test_bad_machine_detection_is_refused(
    app: DetectionApp, detection: dict[str, Any], field: str
):
    body = {
        "endpoint": {"type": "PHONE", "phoneNumber": PERSON},
        "callsConfigurationId": CONFIG,
        "machineDetection": detection,
    }
    refused = await app.api.post(CALLS, json=body)
    assert refused.status_code == 400, refused.text
    assert field in error_of(refused)["validationErrors"], error_of(refused)
    listed = (await app.api.get(CALLS)).json()["results"]
    assert listed == []  # nothing half-made


def seconds_between(first: dict, second: dict) -> float:
    return (parse_time(second["timestamp"]) - parse_time(first["timestamp"])).total_seconds()


async def test_a_run_whose_audio_stops_coming_fails_on_the_wall_clock(app: DetectionApp):
    """The detector counts audio time: with its frames gone (here its tap taken away, as the
    plane drops a tap that raised), the run still ends, shortly after it could last decide."""
    call_id = await app.dial(SILENT, detectionTime=1)
    established = await app.detected(call_id, "CALL_ESTABLISHED")
    run = app.gateway.detection._runs[call_id]
    app.gateway.bridges.untap(call_id, run.tap)
    failed = await app.detected(call_id, "MACHINE_DETECTION_FAILED", timeout=6)
    assert "stopped" in failed["properties"]["reason"]
    assert seconds_between(established, failed) == pytest.approx(3.0, abs=0.6)
    app.nothing_left()
    await app.hang_up(call_id)
