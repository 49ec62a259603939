"""Say, play, stop-play, capture and send DTMF on simulated phones: what the phones heard (by
FFT and by the DTMF detector), the events' order and JSON shapes (against the OpenAPI), how
actions end (by themselves, on request, by a key, by a hangup, by a conference) and every
request that is refused."""

from __future__ import annotations

import asyncio
import io
import os
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.app import Gateway
from gateway.media.dtmf_detect import DtmfDetector
from gateway.testing.app import CALL_EVENTS, phone_heard, prepare_app
from gateway.testing.audio import dominant_frequency, read_wav, tone, tone_level
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.contract import OpenApiContract, voice
from tests.test_dialogs import ANSWERS, CONFIG, DIALOG_EVENTS, DID, NUMBERS, App, error_of
from tests.test_recordings import SpecChecked
from tests.test_url_audio import AudioServer, whole

CALLS = "/calls/1/calls"
ACTION_EVENTS = ["SAY_FINISHED", "PLAY_FINISHED", "DTMF_CAPTURED", "ERROR"]
CONFERENCE_EVENTS = ["CONFERENCE_CREATED", "CONFERENCE_FINISHED", "PARTICIPANT_JOINED"]
RECORDING_EVENTS = [f"CALL_RECORDING_{what}" for what in ("STARTED", "STOPPED", "READY", "FAILED")]
RATE = 8000
HELLO = {"text": "Hello.", "language": "en"}


def child_commands() -> list[str]:
    """The commands of this process's children (from /proc: no psutil here)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid():
                found.append(status.parent.joinpath("comm").read_text().strip())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


def digits_in(samples: np.ndarray) -> str:
    """The DTMF digits a phone heard, in order."""
    detector = DtmfDetector()
    usable = len(samples) // 160 * 160
    found = []
    for frame in samples[:usable].reshape(-1, 160):
        found += [t.digit for t in detector.update(("leg",), frame[None, :]) if not t.end]
    return "".join(found)


class ActionApp(SpecChecked, App):
    def __init__(
        self,
        api: httpx.AsyncClient,
        recorder: WebhookRecorder,
        spec: OpenApiContract,
        gateway: Gateway,
    ) -> None:
        super().__init__(api, recorder)
        self.spec = spec
        self.gateway = gateway

    async def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        response = await self.api.post(path, json=body)
        assert response.status_code == status, response.text
        self.spec.validate("POST", path, status, response.json(), strict=True)
        return response.json()

    async def answered(self) -> str:
        call_id = await self.inbound()
        await self.post(f"{CALLS}/{call_id}/answer", {})
        await self.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
        return call_id

    async def finished(self, call_id: str | None, event_type: str, **match: Any) -> dict:
        found = await self.recorder.wait_for(
            types=[event_type],
            predicate=lambda e: (
                (call_id is None or e.get("callId") == call_id)
                and all(e.get(k) == v for k, v in match.items())
            ),
            timeout=15,
        )
        return found[-1]

    async def heard(self, call_id: str) -> np.ndarray:
        return await phone_heard(self.api, call_id)

    async def upload(self, samples: np.ndarray, name: str = "prompt.wav") -> str:
        files = {"file": (name, wav_bytes(samples), "audio/wav")}
        response = await self.api.post("/calls/1/files", files=files)
        assert response.status_code in (200, 201), response.text
        return response.json()["id"]

    async def quiet(self) -> None:
        """Nothing an action held is left: no task, capture, listener, tap, overlay."""
        actions = self.gateway.actions
        async with asyncio.timeout(5):  # a cancelled load may take a moment to end
            await asyncio.gather(*actions._tasks, return_exceptions=True)
        assert not actions._tasks and not actions._prompts and not actions._captures
        assert not actions._listeners and not actions._senders
        assert not self.gateway.bridges._taps and not self.gateway.bridges._sources
        rooms = self.gateway.conferences._rooms.values()
        assert not any(room.overlays or room.taps for room in rooms)
        async with asyncio.timeout(5):  # a synthesis nobody waits for is killed, not kept
            while self.gateway.tts._jobs:
                await asyncio.sleep(0.02)
        assert "espeak-ng" not in child_commands()


@pytest.fixture
async def app(
    api: httpx.AsyncClient, reference: Path, gateway: Gateway
) -> AsyncIterator[ActionApp]:
    async with WebhookRecorder() as recorder:
        events = [
            *CALL_EVENTS,
            *DIALOG_EVENTS,
            *ACTION_EVENTS,
            *CONFERENCE_EVENTS,
            *RECORDING_EVENTS,
        ]
        await prepare_app(
            api, recorder.url, CONFIG, numbers=[DID], events=events, simulated=NUMBERS
        )
        yield ActionApp(api, recorder, voice(reference), gateway)


async def until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def voiced(samples: np.ndarray) -> float:
    """Seconds of the samples louder than a whisper (20 ms frames)."""
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    return float((np.sqrt((frames**2).mean(axis=1)) > 300).sum() * 0.02)


# -- say ------------------------------------------------------------------------------------


async def test_say_is_heard_by_the_caller_and_finishes_with_its_duration(app: ActionApp):
    call_id = await app.answered()
    assert await app.post(f"{CALLS}/{call_id}/say", {**HELLO, "customData": {"step": "menu"}}) == {
        "status": "PENDING"
    }
    event = await app.finished(call_id, "SAY_FINISHED")
    properties = event["properties"]
    assert properties["playedCompletely"] is True
    assert properties["customData"] == {"step": "menu"}
    assert 300 <= properties["duration"] <= 2000
    heard = await app.heard(call_id)
    assert voiced(heard) > 0.2  # speech reached the phone
    call = (await app.api.get(f"{CALLS}/{call_id}")).json()
    assert call["customData"]["step"] == "menu"  # customData updates the call's
    app.assert_events_conform()
    await app.quiet()


async def test_say_loops_and_speech_rate_change_the_duration(app: ActionApp):
    call_id = await app.answered()
    text = {"text": "One two three four.", "language": "en-gb"}
    await app.post(f"{CALLS}/{call_id}/say", text)
    once = (await app.finished(call_id, "SAY_FINISHED"))["properties"]["duration"]
    await app.post(f"{CALLS}/{call_id}/say", {**text, "loopCount": 2, "speechRate": 2.0})
    events = await app.recorder.wait_for(2, types=["SAY_FINISHED"], call_id=call_id, timeout=15)
    twice_fast = events[1]["properties"]["duration"]
    assert 0.7 * once < twice_fast < 1.3 * once  # twice as long, twice as fast


async def test_a_key_stops_a_say_with_stop_on_and_is_reported(app: ActionApp):
    call_id = await app.answered()
    long_text = {"text": "Welcome. " * 30, "language": "en", "stopOn": {"type": "DTMF"}}
    await app.post(f"{CALLS}/{call_id}/say", long_text)
    await app.gateway.actions.loaded()
    app.gateway.calls.on_dtmf(call_id, "5")
    event = await app.finished(call_id, "SAY_FINISHED")
    assert event["properties"]["playedCompletely"] is False
    assert event["properties"]["capturedDtmf"] == "5"
    assert [e["type"] for e in app.recorder.events(call_id)].count("DTMF_CAPTURED") == 0
    await app.quiet()


async def test_only_the_terminator_stops_a_prompt_that_names_one(app: ActionApp):
    call_id = await app.answered()
    body = {"text": "Welcome. " * 30, "language": "en",
            "stopOn": {"type": "DTMF", "terminator": "#"}}  # fmt: skip
    await app.post(f"{CALLS}/{call_id}/say", body)
    await app.gateway.actions.loaded()
    app.gateway.calls.on_dtmf(call_id, "1")
    app.gateway.calls.on_dtmf(call_id, "#")
    event = await app.finished(call_id, "SAY_FINISHED")
    assert event["properties"]["capturedDtmf"] == "#"
    assert "DTMF_CAPTURED" not in app.recorder.types(call_id)


# -- play -----------------------------------------------------------------------------------


async def test_an_uploaded_file_is_played_loop_count_times(app: ActionApp):
    call_id = await app.answered()
    file_id = await app.upload(tone(600, 0.5, rate=RATE))
    body = {"content": {"type": "FILE", "fileId": file_id}, "loopCount": 2}
    await app.post(f"{CALLS}/{call_id}/play", body)
    event = await app.finished(call_id, "PLAY_FINISHED")
    assert event["properties"]["playedCompletely"] is True
    assert abs(event["properties"]["duration"] - 1000) <= 20
    heard = await app.heard(call_id)
    assert abs(voiced(heard) - 1.0) <= 0.1
    loud = heard[np.abs(heard) > 1000]
    assert abs(dominant_frequency(heard, RATE) - 600) < 5 and len(loud)
    app.assert_events_conform()
    await app.quiet()


async def test_a_call_recording_holds_the_prompt_the_call_heard(app: ActionApp):
    call_id = await app.answered()
    file_id = await app.upload(tone(600, 0.6, rate=RATE))
    await app.post(f"{CALLS}/{call_id}/start-recording", {"recording": {"recordingType": "AUDIO"}})
    await app.finished(call_id, "CALL_RECORDING_STARTED")
    await app.post(f"{CALLS}/{call_id}/play", {"content": {"type": "FILE", "fileId": file_id}})
    await app.finished(call_id, "PLAY_FINISHED")
    await app.post(f"{CALLS}/{call_id}/stop-recording")
    ready = await app.finished(call_id, "CALL_RECORDING_READY")
    (file,) = ready["properties"]["recording"]["files"]
    pcm, rate = read_wav((await app.api.get(f"/calls/1/recordings/files/{file['id']}")).content)
    assert tone_level(pcm, rate, 600) > -20
    assert abs(voiced(pcm.astype(np.float64)) - 0.6) <= 0.1


async def test_a_prompt_is_no_talk_for_max_silence_and_the_recording_carries_on(app: ActionApp):
    """The caller talks (a tone), a prompt plays, the caller stops: the recording holds the
    prompt and stops one second after the caller's last sound, not when the prompt began."""
    call_id = await app.answered()
    source = f"/pstn/1/calls/{call_id}/source"
    await app.api.put(source, json={"type": "tone", "frequency": 440})
    body = {"recording": {"recordingType": "AUDIO", "maxSilence": 1}}
    await app.post(f"{CALLS}/{call_id}/start-recording", body)
    file_id = await app.upload(tone(600, 0.6, rate=RATE))
    await app.post(f"{CALLS}/{call_id}/play", {"content": {"type": "FILE", "fileId": file_id}})
    await app.finished(call_id, "PLAY_FINISHED")
    await app.api.put(source, json={"type": "silence"})
    ready = await app.finished(call_id, "CALL_RECORDING_READY")
    (file,) = ready["properties"]["recording"]["files"]
    pcm, rate = read_wav((await app.api.get(f"/calls/1/recordings/files/{file['id']}")).content)
    assert tone_level(pcm, rate, 600) > -25 and tone_level(pcm, rate, 440) > -25
    assert "CALL_RECORDING_FAILED" not in app.recorder.types(call_id)


async def test_offset_and_timeout_cut_the_first_pass_only(app: ActionApp):
    call_id = await app.answered()
    file_id = await app.upload(tone(600, 1.0, rate=RATE))
    body = {"content": {"type": "FILE", "fileId": file_id}, "loopCount": 2,
            "offset": 500, "timeout": 200}  # fmt: skip
    await app.post(f"{CALLS}/{call_id}/play", body)
    event = await app.finished(call_id, "PLAY_FINISHED")
    assert abs(event["properties"]["duration"] - 1200) <= 20


async def test_stop_play_ends_the_prompt_not_played_completely(app: ActionApp):
    call_id = await app.answered()
    file_id = await app.upload(tone(600, 5.0, rate=RATE))
    await app.post(f"{CALLS}/{call_id}/play", {"content": {"type": "FILE", "fileId": file_id}})
    await app.gateway.actions.loaded()
    await app.post(f"{CALLS}/{call_id}/stop-play", {"customData": {"why": "enough"}})
    event = await app.finished(call_id, "PLAY_FINISHED")
    assert event["properties"]["playedCompletely"] is False
    assert event["properties"]["duration"] < 5000
    await app.quiet()


async def test_text_content_is_spoken(app: ActionApp):
    call_id = await app.answered()
    text = {"type": "TEXT", "text": "Hello.", "language": "de"}
    await app.post(f"{CALLS}/{call_id}/play", {"content": text})
    event = await app.finished(call_id, "PLAY_FINISHED")
    assert event["properties"]["playedCompletely"] is True and event["properties"]["duration"] > 200
    assert voiced(await app.heard(call_id)) > 0.2


async def test_url_content_is_fetched_once_and_played(app: ActionApp):
    async with AudioServer() as server:
        server.routes["/prompt.wav"] = whole(wav_bytes(tone(650, 0.4, rate=RATE)))
        url = {"type": "URL", "fileUrl": f"{server.base}/prompt.wav"}
        call_id = await app.answered()
        for played in (1, 2):
            await app.post(f"{CALLS}/{call_id}/play", {"content": url})
            events = await app.recorder.wait_for(played, types=["PLAY_FINISHED"], call_id=call_id)
        assert [e["properties"]["playedCompletely"] for e in events] == [True, True]
        assert server.requests["/prompt.wav"] == 1  # cached after the first play
    heard = await app.heard(call_id)
    assert abs(dominant_frequency(heard, RATE) - 650) < 5
    assert abs(voiced(heard) - 0.8) <= 0.1


async def test_a_recording_is_played_back(app: ActionApp):
    recorded = await app.answered()
    tone_source = {"type": "tone", "frequency": 900}
    assert (await app.api.put(f"/pstn/1/calls/{recorded}/source", json=tone_source)).is_success
    recording = {"recording": {"recordingType": "AUDIO", "maxDuration": 1}}
    await app.post(f"{CALLS}/{recorded}/start-recording", recording)
    ready = await app.finished(recorded, "CALL_RECORDING_READY")
    (file,) = ready["properties"]["recording"]["files"]
    listener = await app.answered()
    content = {"type": "RECORDING", "fileId": file["id"]}
    await app.post(f"{CALLS}/{listener}/play", {"content": content})
    event = await app.finished(listener, "PLAY_FINISHED")
    assert abs(event["properties"]["duration"] - 1000) <= 60
    assert abs(dominant_frequency(await app.heard(listener), RATE) - 900) < 5


async def test_content_that_cannot_be_played_gives_an_error_event(app: ActionApp):
    call_id = await app.answered()
    url = {"type": "URL", "fileUrl": "http://127.0.0.1:9/missing.wav"}
    await app.post(f"{CALLS}/{call_id}/play", {"content": url})
    event = await app.finished(call_id, "ERROR")
    assert event["properties"]["actionType"] == "PLAY"
    assert event["properties"]["errorCode"] == "FILE_CAN_NOT_BE_PLAYED"
    assert event["properties"]["errorDetails"]
    assert "PLAY_FINISHED" not in app.recorder.types(call_id)
    app.assert_events_conform()
    await app.quiet()


async def test_a_new_prompt_ends_the_one_playing(app: ActionApp):
    call_id = await app.answered()
    file_id = await app.upload(tone(600, 5.0, rate=RATE))
    await app.post(f"{CALLS}/{call_id}/play", {"content": {"type": "FILE", "fileId": file_id}})
    await app.post(f"{CALLS}/{call_id}/say", HELLO)
    await app.finished(call_id, "SAY_FINISHED")
    play = await app.finished(call_id, "PLAY_FINISHED")
    assert play["properties"]["playedCompletely"] is False
    assert app.recorder.types(call_id).index("PLAY_FINISHED") < app.recorder.types(call_id).index(
        "SAY_FINISHED"
    )


# -- ends -----------------------------------------------------------------------------------


async def test_a_hangup_mid_say_finishes_it_before_the_call_and_leaves_nothing(app: ActionApp):
    call_id = await app.answered()
    await app.post(f"{CALLS}/{call_id}/say", {"text": "Welcome. " * 30, "language": "en"})
    await app.gateway.actions.loaded()
    await app.post(f"{CALLS}/{call_id}/hangup", {})
    await app.finished(call_id, "CALL_FINISHED")
    types = app.recorder.types(call_id)
    assert types.index("SAY_FINISHED") < types.index("CALL_FINISHED")
    say = await app.finished(call_id, "SAY_FINISHED")
    assert say["properties"]["playedCompletely"] is False
    await app.quiet()
    assert not app.gateway.media.bridges


async def test_a_hangup_while_speech_is_synthesised_leaves_no_task(app: ActionApp):
    call_id = await app.answered()
    await app.post(f"{CALLS}/{call_id}/say", {"text": "A long menu. " * 200, "language": "en"})
    await app.post(f"{CALLS}/{call_id}/hangup", {})
    say = await app.finished(call_id, "SAY_FINISHED")
    assert say["properties"] == {"duration": 0, "playedCompletely": False}
    await app.finished(call_id, "CALL_FINISHED")
    await app.quiet()


# -- DTMF -----------------------------------------------------------------------------------


async def test_capture_ends_at_max_length(app: ActionApp):
    call_id = await app.answered()
    body = {"maxLength": 3, "timeout": 5000, "customData": {"menu": "main"}}
    await app.post(f"{CALLS}/{call_id}/capture/dtmf", body)
    for digit in "123":
        app.gateway.calls.on_dtmf(call_id, digit)
    event = await app.finished(call_id, "DTMF_CAPTURED")
    assert event["properties"] == {"dtmf": "123", "timeout": False, "customData": {"menu": "main"}}
    app.assert_events_conform()
    await app.quiet()


async def test_capture_ends_at_the_terminator_which_is_not_reported(app: ActionApp):
    call_id = await app.answered()
    await app.post(f"{CALLS}/{call_id}/capture/dtmf", {"maxLength": 5, "timeout": 5000,
                                                       "terminator": "#"})  # fmt: skip
    for digit in "42#":
        app.gateway.calls.on_dtmf(call_id, digit)
    event = await app.finished(call_id, "DTMF_CAPTURED")
    assert event["properties"]["dtmf"] == "42" and event["properties"]["timeout"] is False


async def test_capture_times_out_with_what_it_has(app: ActionApp):
    call_id = await app.answered()
    body = {"maxLength": 4, "timeout": 300, "digitTimeout": 200}
    await app.post(f"{CALLS}/{call_id}/capture/dtmf", body)
    app.gateway.calls.on_dtmf(call_id, "7")
    event = await app.finished(call_id, "DTMF_CAPTURED")
    assert event["properties"]["dtmf"] == "7" and event["properties"]["timeout"] is True


async def test_capture_with_a_prompt_reports_how_much_was_played(app: ActionApp):
    call_id = await app.answered()
    file_id = await app.upload(tone(600, 5.0, rate=RATE))
    body = {"maxLength": 1, "timeout": 5000,
            "playContent": {"type": "FILE", "fileId": file_id}}  # fmt: skip
    await app.post(f"{CALLS}/{call_id}/capture/dtmf", body)
    await app.gateway.actions.loaded()
    app.gateway.calls.on_dtmf(call_id, "9")  # barge-in
    event = await app.finished(call_id, "DTMF_CAPTURED")
    played = event["properties"]["playedContentProperties"]
    assert event["properties"]["dtmf"] == "9"
    assert played["playedCompletely"] is False and played["duration"] < 5000
    assert "PLAY_FINISHED" not in app.recorder.types(call_id)
    app.assert_events_conform()
    await app.quiet()


async def test_in_band_keys_of_several_callers_are_told_apart(app: ActionApp):
    callers = [await app.answered() for _ in range(3)]
    for call_id in callers:
        await app.post(f"{CALLS}/{call_id}/capture/dtmf", {"maxLength": 2, "timeout": 10_000})
    for call_id, keys in zip(callers, ("12", "45", "#0"), strict=True):
        body = {"digits": keys, "mode": "inband"}
        assert (await app.api.post(f"/pstn/1/calls/{call_id}/dtmf", json=body)).status_code == 202
    for call_id, keys in zip(callers, ("12", "45", "#0"), strict=True):
        event = await app.finished(call_id, "DTMF_CAPTURED")
        assert event["properties"] == {"dtmf": keys, "timeout": False}
    await app.quiet()


async def test_a_key_heard_both_in_band_and_by_rfc4733_counts_once(app: ActionApp):
    call_id = await app.answered()
    await app.post(f"{CALLS}/{call_id}/capture/dtmf", {"maxLength": 2, "timeout": 1500})
    typed = await app.api.post(f"/pstn/1/calls/{call_id}/dtmf", json={"digits": "5"})
    assert typed.status_code == 202
    app.gateway.calls.on_dtmf(call_id, "5")  # the same press, out of band as well
    event = await app.finished(call_id, "DTMF_CAPTURED")
    assert event["properties"] == {"dtmf": "5", "timeout": True}


async def test_digits_nobody_asked_for_are_reported_one_by_one(app: ActionApp):
    call_id = await app.answered()
    for digit in "12":
        app.gateway.calls.on_dtmf(call_id, digit)
    events = await app.recorder.wait_for(2, types=["DTMF_CAPTURED"], call_id=call_id)
    assert [e["properties"] for e in events] == [
        {"dtmf": "1", "timeout": False},
        {"dtmf": "2", "timeout": False},
    ]


async def test_send_dtmf_is_heard_in_band_by_a_phone_without_rfc4733(app: ActionApp):
    call_id = await app.answered()
    await app.post(f"{CALLS}/{call_id}/send-dtmf", {"dtmf": "12w#"})
    await until(lambda: not app.gateway.actions._senders, 5)
    heard = await app.heard(call_id)
    assert digits_in(heard.astype(np.int16)) == "12#"
    await app.quiet()


async def test_send_dtmf_goes_out_of_band_to_a_phone_that_takes_rfc4733(app: ActionApp):
    number = {"number": "15550109999", "behaviour": "answer",
              "options": {"answerAfterMs": 20, "dtmf": "rfc4733"}}  # fmt: skip
    assert (await app.api.post("/pstn/1/numbers", json=number)).status_code == 201
    call_id = await app.outbound("15550109999")
    await app.post(f"{CALLS}/{call_id}/send-dtmf", {"dtmf": "4W2"})
    await until(lambda: not app.gateway.actions._senders, 5)
    received = (await app.api.get(f"/pstn/1/calls/{call_id}/dtmf")).json()
    assert received == {"received": "42"}
    assert digits_in((await app.heard(call_id)).astype(np.int16)) == ""  # no tones as well
    await app.quiet()


async def test_a_hangup_mid_capture_or_mid_send_ends_them_first(app: ActionApp):
    capturing, sending = await app.answered(), await app.answered()
    await app.post(f"{CALLS}/{capturing}/capture/dtmf", {"maxLength": 4, "timeout": 30_000})
    app.gateway.calls.on_dtmf(capturing, "8")
    await app.post(f"{CALLS}/{sending}/send-dtmf", {"dtmf": "1W1W1W1"})
    for call_id in (capturing, sending):
        await app.post(f"{CALLS}/{call_id}/hangup", {})
        await app.finished(call_id, "CALL_FINISHED")
    types = app.recorder.types(capturing)
    assert types.index("DTMF_CAPTURED") < types.index("CALL_FINISHED")
    captured = await app.finished(capturing, "DTMF_CAPTURED")
    assert captured["properties"] == {"dtmf": "8", "timeout": False}
    await app.quiet()
    assert not app.gateway.media.bridges


# -- dialogs and conferences ----------------------------------------------------------------


async def test_a_dialog_say_is_heard_by_both_calls(app: ActionApp):
    parent = await app.inbound()
    dialog = await app.dialog(parent, ANSWERS)
    await app.wait(dialog["id"], "DIALOG_ESTABLISHED")
    child = dialog["childCall"]["id"]
    await app.post(f"/calls/1/dialogs/{dialog['id']}/say", HELLO)
    event = await app.finished(None, "SAY_FINISHED", dialogId=dialog["id"])
    assert event["properties"]["playedCompletely"] is True
    assert "callId" not in event
    for call_id in (parent, child):
        assert voiced(await app.heard(call_id)) > 0.2
    app.assert_events_conform()


async def test_rfc4733_keys_reach_the_other_side_of_a_mixed_dialog(app: ActionApp):
    """Two simulated phones are always mixed: the gateway sends the caller's out-of-band keys
    on to the callee, by RFC 4733 to one that takes it, as tones to one that does not."""
    takes = {"number": "15550108888", "behaviour": "answer",
             "options": {"answerAfterMs": 20, "dtmf": "rfc4733"}}  # fmt: skip
    assert (await app.api.post("/pstn/1/numbers", json=takes)).status_code == 201
    for number, check in (("15550108888", "rfc4733"), (ANSWERS, "tones")):
        parent = await app.inbound()
        dialog = await app.dialog(parent, number)
        await app.wait(dialog["id"], "DIALOG_ESTABLISHED")
        child = dialog["childCall"]["id"]
        keyed = {"digits": "3#", "mode": "rfc4733"}
        assert (await app.api.post(f"/pstn/1/calls/{parent}/dtmf", json=keyed)).status_code == 202
        await app.recorder.wait_for(2, types=["DTMF_CAPTURED"], call_id=parent)  # unsolicited
        if check == "rfc4733":
            received = await app.api.get(f"/pstn/1/calls/{child}/dtmf")
            assert received.json() == {"received": "3#"}
        else:
            await until(lambda: not app.gateway.bridges._sources, 5)
            assert digits_in((await app.heard(child)).astype(np.int16)) == "3#"
        await app.post(f"{CALLS}/{parent}/hangup", {})
        await app.finished(child, "CALL_FINISHED")


async def test_a_conference_play_is_heard_by_every_participant(app: ActionApp):
    first, second = await app.answered(), await app.answered()
    room = {"name": "room", "callsConfigurationId": CONFIG}
    created = await app.api.post("/calls/1/conferences", json=room)
    conference = created.json()["id"]
    for call_id in (first, second):
        joined = await app.api.put(f"/calls/1/conferences/{conference}/call/{call_id}", json={})
        assert joined.status_code == 200, joined.text
        await app.finished(call_id, "PARTICIPANT_JOINED")
    file_id = await app.upload(tone(700, 0.5, rate=RATE))
    await app.post(f"/calls/1/conferences/{conference}/play",
                   {"content": {"type": "FILE", "fileId": file_id}})  # fmt: skip
    event = await app.finished(None, "PLAY_FINISHED", conferenceId=conference)
    assert event["properties"]["playedCompletely"] is True
    for call_id in (first, second):
        assert abs(dominant_frequency(await app.heard(call_id), RATE) - 700) < 5


async def test_joining_a_conference_ends_the_calls_prompt(app: ActionApp):
    call_id = await app.answered()
    file_id = await app.upload(tone(600, 5.0, rate=RATE))
    await app.post(f"{CALLS}/{call_id}/play", {"content": {"type": "FILE", "fileId": file_id}})
    await app.gateway.actions.loaded()
    room = {"name": "room", "callsConfigurationId": CONFIG}
    created = await app.api.post("/calls/1/conferences", json=room)
    conference = created.json()["id"]
    joined = await app.api.put(f"/calls/1/conferences/{conference}/call/{call_id}", json={})
    assert joined.status_code == 200, joined.text
    event = await app.finished(call_id, "PLAY_FINISHED")
    assert event["properties"]["playedCompletely"] is False
    await app.quiet()


# -- refused --------------------------------------------------------------------------------


REFUSED = [
    ("say", {"text": "", "language": "en"}, "text"),
    ("say", {"text": "   ", "language": "en"}, "text"),
    ("say", {"text": "Hi", "language": "xx"}, "language"),
    ("say", {"text": "Hi", "language": "en", "speechRate": 3}, "speechRate"),
    ("say", {"text": "Hi", "language": "en", "preferences": {"voiceName": "Nobody"}},
     "preferences.voiceName"),
    ("play", {"content": {"type": "FILE", "fileId": "missing"}}, "content.fileId"),
    ("play", {"content": {"type": "RECORDING", "fileId": "missing"}}, "content.fileId"),
    ("play", {"content": {"type": "URL", "fileUrl": "ftp://x/y.wav"}}, "content.URL.fileUrl"),
    ("play", {"content": {"type": "TTY", "text": "hi"}}, "content.type"),
    ("play", {"content": {"type": "FILE", "fileId": "x"}, "loopCount": 0}, "loopCount"),
    ("capture/dtmf", {"maxLength": 0, "timeout": 1000}, "maxLength"),
    ("capture/dtmf", {"maxLength": 2, "timeout": 0}, "timeout"),
    ("capture/dtmf", {"maxLength": 2, "timeout": 100, "terminator": "x"}, "terminator"),
    ("capture/dtmf", {"maxLength": 2, "timeout": 100, "terminator": "##"}, "terminator"),
    ("send-dtmf", {"dtmf": ""}, "dtmf"),
    ("send-dtmf", {"dtmf": "12x"}, "dtmf"),
]  # fmt: skip


async def test_impossible_requests_are_refused_naming_the_field(app: ActionApp):
    call_id = await app.answered()
    for path, body, field in REFUSED:
        response = await app.api.post(f"{CALLS}/{call_id}/{path}", json=body)
        assert response.status_code == 400, (path, body, response.text)
        assert field in error_of(response)["validationErrors"], (body, error_of(response))
    await app.quiet()


async def test_actions_on_calls_that_cannot_take_them(app: ActionApp):
    missing = await app.api.post(f"{CALLS}/nope/say", json=HELLO)
    assert missing.status_code == 404
    ringing = await app.inbound()
    unanswered = await app.api.post(f"{CALLS}/{ringing}/say", json=HELLO)
    assert unanswered.status_code == 400 and "RINGING" in error_of(unanswered)["text"]
    answered = await app.answered()
    capture = {"maxLength": 2, "timeout": 5000}
    await app.post(f"{CALLS}/{answered}/capture/dtmf", capture)
    again = await app.api.post(f"{CALLS}/{answered}/capture/dtmf", json=capture)
    assert again.status_code == 400 and "already" in error_of(again)["text"]
    assert (await app.api.post("/calls/1/dialogs/nope/say", json=HELLO)).status_code == 404
    assert (await app.api.post("/calls/1/conferences/nope/play", json={
        "content": {"type": "FILE", "fileId": "x"}})).status_code == 404  # fmt: skip
