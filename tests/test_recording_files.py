"""What lies beside and around recording files: the metadata JSON of each, *_RECORDING_DELETED,
files a crashed process left half-written (repaired on start), the beep a call hears before
its recording, STEREO call recordings, and dialog recordings composed on request."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from gateway.app import Gateway
from gateway.core.recordings import (
    BEEP_HZ,
    BEEP_MS,
    FileStatus,
    RecordingControl,
    RecordingFile,
)
from gateway.media.recorder import HEADER_SIZE, wav_header
from gateway.store.recordings import SqlRecordingStore
from gateway.testing.app import CALL_EVENTS, prepare_app
from gateway.testing.audio import dominant_frequency, read_wav, tone, tone_level
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.contract import voice
from tests.media.test_dialog_audio import heard, run_ticks
from tests.test_dialogs import ANSWERS, CONFIG, DIALOG_EVENTS, DID, NUMBERS
from tests.test_recordings import (
    AUDIO,
    CALLS,
    DIALOGS,
    RATE,
    RECORDING_EVENTS,
    RECORDINGS,
    RecordingApp,
    record_window,
    seconds,
)

MORE_EVENTS = [
    "CALL_RECORDING_DELETED",
    "DIALOG_RECORDING_DELETED",
    "DIALOG_COMPOSITION_FINISHED",
    "DIALOG_COMPOSITION_FAILED",
]


@pytest.fixture
async def app(api: httpx.AsyncClient, reference: Path) -> AsyncIterator[RecordingApp]:
    async with WebhookRecorder() as recorder:
        events = [*CALL_EVENTS, *DIALOG_EVENTS, *RECORDING_EVENTS, *MORE_EVENTS]
        await prepare_app(
            api, recorder.url, CONFIG, numbers=[DID], events=events, simulated=NUMBERS
        )
        yield RecordingApp(api, recorder, voice(reference))


def directory(gateway: Gateway) -> Path:
    return gateway.settings.data_dir / "recordings"


def stereo_of(content: bytes) -> np.ndarray:
    """A two-channel WAV's samples as [frames, 2]."""
    with wave.open(io.BytesIO(content), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, RATE)
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return data.reshape(-1, 2)


async def test_metadata_beside_each_file_and_deletion_announced(
    app: RecordingApp, gateway: Gateway
):
    call_id = await app.answered()
    body = {"recording": {**AUDIO, "customData": {"case": "meta"}, "filePrefix": "p_1"}}
    await record_window(
        gateway,
        lambda: app.call("POST", f"{CALLS}/{call_id}/start-recording", json=body),
        lambda: app.call("POST", f"{CALLS}/{call_id}/stop-recording"),
        ticks=30,
    )
    (file,) = (await app.ready(call_id=call_id))["files"]
    meta = directory(gateway) / f"{file['id']}.json"
    written = json.loads(meta.read_text())
    public = await app.call("GET", f"{RECORDINGS}/calls/{call_id}")
    assert written == {
        **public["files"][0],
        "status": "READY",
        "recordingType": "AUDIO",
        "channels": 1,
        "callId": call_id,
        "callsConfigurationId": CONFIG,
        "endpoint": public["endpoint"],
        "direction": "INBOUND",
        "filePrefix": "p_1",
    }
    assert written["customData"] == {"case": "meta"} and written["size"] == file["size"]
    assert sorted(p.name for p in directory(gateway).iterdir()) == sorted(
        [file["name"], meta.name]
    )  # no temporary file left

    deleted = await app.call("DELETE", f"{RECORDINGS}/calls/{call_id}")
    assert deleted["callId"] == call_id
    assert list(directory(gateway).iterdir()) == []
    (event,) = await app.recorder.wait_for(types=["CALL_RECORDING_DELETED"], call_id=call_id)
    assert "properties" not in event and event["callsConfigurationId"] == CONFIG
    assert app.recording_types(call_id)[-1] == "CALL_RECORDING_DELETED"
    app.assert_events_conform()


async def test_a_recording_left_unfinished_by_a_crash_is_repaired_on_start(
    app: RecordingApp, gateway: Gateway
):
    """A row still RECORDING and a WAV whose header still says 0 bytes, as a process killed
    mid-recording leaves them: on start the header is rebuilt from what is on disk, the file
    is READY and its READY is published; a file with no audio yet becomes FAILED."""
    with_audio, without = await app.answered(), await app.answered()
    for call_id in (with_audio, without):
        await app.api.post(f"/pstn/1/calls/{call_id}/hangup")
        await app.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
    store = SqlRecordingStore(gateway.db)
    start = gateway.calls._clock()
    folder = directory(gateway)
    folder.mkdir(parents=True, exist_ok=True)
    cut = tone(700, 1.5)[:-37]  # killed mid-write: not even a whole frame at the end
    for file_id, call_id, pcm in (("crashed-1", with_audio, cut), ("crashed-2", without, None)):
        leg = gateway.calls.get(call_id)
        store.save(
            RecordingFile(
                file_id,
                CONFIG,
                start,
                call_id=call_id,
                endpoint=leg.endpoint,
                direction=leg.direction.value,
            )
        )
        data = b"" if pcm is None else pcm.astype("<i2").tobytes() + b"\x01"  # half a sample
        (folder / f"{file_id}.wav").write_bytes(wav_header(0) + data)

    again = RecordingControl(
        gateway.calls,
        gateway.dialogs,
        gateway.bridges,
        store,
        gateway.webhooks,
        folder,
        conferences=gateway.conferences,
    )
    assert again.recover() == 2
    ready = await app.ready(call_id=with_audio)
    (file,) = ready["files"]
    assert file["size"] == HEADER_SIZE + 2 * len(cut) and file["duration"] == 1
    pcm = await app.download("crashed-1")
    assert len(pcm) == len(cut) and abs(dominant_frequency(pcm, RATE) - 700) < 5
    row = store.get("crashed-1")
    assert row is not None and row.status is FileStatus.READY
    assert row.end_time == start + timedelta(seconds=len(cut) / RATE)
    assert json.loads((folder / "crashed-1.json").read_text())["status"] == "READY"

    (failed,) = await app.recorder.wait_for(types=["CALL_RECORDING_FAILED"], call_id=without)
    assert "before any audio" in failed["properties"]["reason"]
    assert failed["properties"]["fileId"] == "crashed-2"
    assert not (folder / "crashed-2.wav").exists()
    assert json.loads((folder / "crashed-2.json").read_text())["status"] == "FAILED"
    assert again.recover() == 0
    app.assert_events_conform()


async def test_the_call_hears_a_beep_then_the_recording_starts(app: RecordingApp, gateway: Gateway):
    call_id = await app.answered()
    await app.api.put(f"/pstn/1/calls/{call_id}/source", json={"type": "tone", "frequency": 440})
    body = {"recording": {**AUDIO, "beep": True}}
    window = await record_window(
        gateway,
        lambda: app.call("POST", f"{CALLS}/{call_id}/start-recording", json=body),
        lambda: app.call("POST", f"{CALLS}/{call_id}/stop-recording"),
        ticks=60,
    )
    started = app.event("CALL_RECORDING_STARTED", call_id)["properties"]
    assert started["beep"] is True
    pcm = await heard(app.api, call_id, window + 0.5)
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160)
    loud = [tone_level(frame, RATE, BEEP_HZ) > -25 for frame in frames]
    assert abs(sum(loud) * 20 - BEEP_MS) <= 40, sum(loud)  # one beep, of its length
    (file,) = (await app.ready(call_id=call_id))["files"]
    recorded = await app.download(file["id"])
    assert abs(seconds(recorded) - (window - BEEP_MS / 1000)) < 0.3  # from the beep's end
    assert tone_level(recorded, RATE, BEEP_HZ) < -40 and tone_level(recorded, RATE, 440) > -20
    app.assert_events_conform()


async def test_a_stereo_call_recording_has_each_side_on_its_own_channel(
    app: RecordingApp, gateway: Gateway
):
    parent = await app.inbound()
    answer = {"recording": {**AUDIO, "channels": "STEREO"}}
    await app.call("POST", f"{CALLS}/{parent}/answer", json=answer)
    await app.recorder.wait_for(types=["CALL_RECORDING_STARTED"], call_id=parent)
    dialog = await app.dialog(parent, ANSWERS)
    await app.wait(dialog["id"], "DIALOG_ESTABLISHED")
    child = dialog["childCall"]["id"]
    for call_id, frequency in ((parent, 440), (child, 1000)):
        await app.api.put(
            f"/pstn/1/calls/{call_id}/source", json={"type": "tone", "frequency": frequency}
        )
    await run_ticks(gateway, 50)
    await app.call("POST", f"{CALLS}/{parent}/stop-recording")
    (file,) = (await app.ready(call_id=parent))["files"]
    response = await app.api.get(f"{RECORDINGS}/files/{file['id']}")
    pair = stereo_of(response.content)[-int(0.5 * RATE) :]  # the dialog's part
    left, right = pair[:, 0], pair[:, 1]
    assert abs(dominant_frequency(left, RATE) - 440) < 5  # what the caller sends
    assert abs(dominant_frequency(right, RATE) - 1000) < 5  # what it hears
    assert tone_level(left, RATE, 1000) < -40 and tone_level(right, RATE, 440) < -40
    assert file["size"] == HEADER_SIZE + 4 * len(stereo_of(response.content))
    app.assert_events_conform()


@pytest.mark.parametrize("multi", [False, True], ids=["mixed", "multi-channel"])
async def test_a_dialog_recorded_apart_is_composed_on_request(
    app: RecordingApp, gateway: Gateway, multi: bool
):
    dialog_id, parent, child = await app.dialog_with_tones()
    path = f"{DIALOGS}/{dialog_id}"
    await record_window(
        gateway,
        lambda: app.call("POST", f"{path}/start-recording", json=AUDIO),
        lambda: app.call("POST", f"{path}/stop-recording"),
    )
    recorded = await app.ready(dialog_id=dialog_id)
    parts = {r["callId"]: r["files"][0] for r in recorded["callRecordings"]}
    compose = f"{RECORDINGS}/dialogs/{dialog_id}/compose"
    body = {"deleteCallRecordings": not multi, "multiChannel": {"enabled": multi}}
    assert await app.call("POST", compose, json=body) == {"status": "PENDING"}
    (done,) = await app.recorder.wait_for(
        types=["DIALOG_COMPOSITION_FINISHED"], predicate=lambda e: e.get("dialogId") == dialog_id
    )
    recording = done["properties"]["recording"]
    (composed,) = recording["composedFiles"]
    response = await app.api.get(f"{RECORDINGS}/files/{composed['id']}")
    if multi:
        assert composed["multichannelMappingData"] == {"1": parent, "2": child}
        pair = stereo_of(response.content)
        assert abs(dominant_frequency(pair[:, 0], RATE) - 440) < 5
        assert abs(dominant_frequency(pair[:, 1], RATE) - 1000) < 5
        assert {r["callId"] for r in recording["callRecordings"]} == {parent, child}
    else:
        pcm, _ = read_wav(response.content)
        assert tone_level(pcm, RATE, 440) > -20 and tone_level(pcm, RATE, 1000) > -20
        longest = max(f["duration"] for f in parts.values())
        assert abs(composed["duration"] - longest) <= 1
        assert "callRecordings" not in recording  # deleted after composing
        for file in parts.values():
            assert not (directory(gateway) / file["name"]).exists()
            await app.call("GET", f"{RECORDINGS}/files/{file['id']}", 404)
    one = await app.call("GET", f"{RECORDINGS}/dialogs/{dialog_id}")
    assert [f["id"] for f in one["composedFiles"]] == [composed["id"]]
    app.assert_events_conform()

    refused = await app.api.post(f"{RECORDINGS}/dialogs/nope/compose", json={})
    assert refused.status_code == 404
