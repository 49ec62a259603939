"""Recording calls and dialogs with simulated phones: what the files hold (by FFT), how long
they are, the exact event order and JSON shapes (against the OpenAPI), the ways a recording
ends (request, hangup, conference, maxDuration), downloads with ranges, deletion, and every
request that is refused."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.app import Gateway
from gateway.core.bridging import MediaBridges
from gateway.core.recordings import FileStatus, RecordingFile
from gateway.media.plane import MediaPlane
from gateway.media.recorder import HEADER_SIZE, Recorder, Track
from gateway.store.recordings import SqlRecordingStore
from gateway.testing.app import CALL_EVENTS, prepare_app
from gateway.testing.audio import read_wav, tone_level
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.contract import OpenApiContract, voice
from tests.media.test_dialog_audio import run_ticks
from tests.test_dialogs import (
    ANSWERS,
    CONFIG,
    DIALOG_EVENTS,
    DID,
    EVENT_WEBHOOK,
    NUMBERS,
    SILENT,
    App,
    error_of,
)
from tests.test_media_paths import FakeCalls, sip_pair

CALLS = "/calls/1/calls"
DIALOGS = "/calls/1/dialogs"
RECORDINGS = "/calls/1/recordings"
RECORDING_EVENTS = [
    f"{owner}_RECORDING_{what}"
    for owner in ("CALL", "DIALOG")
    for what in ("STARTED", "STOPPED", "READY", "FAILED")
]
AUDIO = {"recordingType": "AUDIO"}
RATE = 8000


class SpecChecked:
    """What the recording tests' apps share: answers and events checked against the spec,
    and recording files downloaded (8 kHz WAV). Needs ``api``, ``recorder`` and ``spec``."""

    api: httpx.AsyncClient
    recorder: WebhookRecorder
    spec: OpenApiContract

    async def call(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        """A request whose answer has ``status`` and a body the spec allows."""
        response = await self.api.request(method, path, **kwargs)
        assert response.status_code == status, response.text
        body = response.json()
        self.spec.validate(method, path, status, body, strict=True)
        return body

    async def download(self, file_id: str) -> np.ndarray:
        response = await self.api.get(f"{RECORDINGS}/files/{file_id}")
        assert response.status_code == 200, response.text
        pcm, rate = read_wav(response.content)
        assert rate == RATE
        return pcm

    def assert_events_conform(self) -> None:
        for event in self.recorder.events():
            self.spec.validate_webhook(EVENT_WEBHOOK, event, strict=True)


class RecordingApp(SpecChecked, App):
    """The dialog tests' app, subscribed to recording events too, checking every answer."""

    def __init__(self, api: httpx.AsyncClient, recorder: WebhookRecorder, spec: OpenApiContract):
        super().__init__(api, recorder)
        self.spec = spec

    async def dialog_with_tones(self) -> tuple[str, str, str]:
        """An established dialog: the caller sends 440 Hz, the callee 1000 Hz."""
        parent = await self.inbound()
        dialog = await self.dialog(parent, ANSWERS)
        await self.wait(dialog["id"], "DIALOG_ESTABLISHED")
        child = dialog["childCall"]["id"]
        for call_id, frequency in ((parent, 440), (child, 1000)):
            source = {"type": "tone", "frequency": frequency}
            sent = await self.api.put(f"/pstn/1/calls/{call_id}/source", json=source)
            assert sent.status_code == 200, sent.text
        return dialog["id"], parent, child

    async def answered(self) -> str:
        """An inbound call the app answered, sending 440 Hz."""
        call_id = await self.inbound()
        await self.call("POST", f"{CALLS}/{call_id}/answer", json={})
        await self.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
        return call_id

    async def ready(
        self, *, call_id: str | None = None, dialog_id: str | None = None, count: int = 1
    ) -> dict:
        """The ``recording`` of the ``count``-th READY of the call (or of the dialog)."""
        found = await self.recorder.wait_for(
            count,
            types=["CALL_RECORDING_READY" if call_id else "DIALOG_RECORDING_READY"],
            predicate=lambda e: (
                e.get("callId") == call_id
                and (call_id is not None or e.get("dialogId") == dialog_id)
            ),
        )
        return found[count - 1]["properties"]["recording"]

    def recording_types(self, call_id: str | None = None) -> list[str]:
        return [t for t in self.recorder.types(call_id) if "_RECORDING_" in t]


@pytest.fixture
async def app(api: httpx.AsyncClient, reference: Path) -> AsyncIterator[RecordingApp]:
    async with WebhookRecorder() as recorder:
        events = [*CALL_EVENTS, *DIALOG_EVENTS, *RECORDING_EVENTS]
        await prepare_app(
            api, recorder.url, CONFIG, numbers=[DID], events=events, simulated=NUMBERS
        )
        yield RecordingApp(api, recorder, voice(reference))


async def record_window(gateway: Gateway, start, stop, ticks: int = 75) -> float:
    """Start, let ``ticks`` frames pass, stop: the seconds between the two requests."""
    began = time.monotonic()
    await start()
    await run_ticks(gateway, ticks)
    await stop()
    return time.monotonic() - began


def seconds(pcm: np.ndarray) -> float:
    return len(pcm) / RATE


def open_files(directory: Path) -> list[str]:
    """Files under ``directory`` this process holds open."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            held.append(target)
    return held


# -- what the files hold ------------------------------------------------------------------


async def test_a_call_recording_of_a_dialog_holds_both_directions(
    app: RecordingApp, gateway: Gateway
):
    dialog_id, parent, child = await app.dialog_with_tones()
    path = f"{CALLS}/{parent}"
    body = {"recording": {**AUDIO, "customData": {"case": "both"}, "filePrefix": "call_1"}}
    window = await record_window(
        gateway,
        lambda: app.call("POST", f"{path}/start-recording", json=body),
        lambda: app.call("POST", f"{path}/stop-recording"),
    )
    recording = await app.ready(call_id=parent)
    assert app.recording_types(parent) == [
        "CALL_RECORDING_STARTED",
        "CALL_RECORDING_STOPPED",
        "CALL_RECORDING_READY",
    ]
    started = app.event("CALL_RECORDING_STARTED", parent)
    assert started["dialogId"] == dialog_id
    assert started["properties"] == {
        "recordingType": "AUDIO",
        "fileId": recording["files"][0]["id"],
        "filePrefix": "call_1",
        "customData": {"case": "both"},
    }
    stopped = app.event("CALL_RECORDING_STOPPED", parent)["properties"]
    assert stopped["fileId"] == started["properties"]["fileId"]
    assert (recording["callId"], recording["status"]) == (parent, "SUCCESSFUL")
    assert recording["direction"] == "INBOUND" and recording["endpoint"]["type"] == "PHONE"
    (file,) = recording["files"]
    assert (file["fileFormat"], file["location"], file["name"]) == (
        "WAV",
        "HOSTED",
        f"{file['id']}.wav",
    )
    pcm = await app.download(file["id"])
    assert file["size"] == HEADER_SIZE + 2 * len(pcm)
    assert abs(seconds(pcm) - window) < 0.3
    assert file["duration"] == round(seconds(pcm))
    middle = pcm[len(pcm) // 4 : -len(pcm) // 4]
    assert tone_level(middle, RATE, 440) > -20 and tone_level(middle, RATE, 1000) > -20
    assert (gateway.settings.data_dir / "recordings" / file["name"]).is_file()
    app.assert_events_conform()
    assert child not in {e.get("callId") for e in app.recorder.events() if "RECORDING" in e["type"]}


@pytest.mark.parametrize("composed", [False, True], ids=["per-participant", "composed"])
async def test_a_dialog_recording(app: RecordingApp, gateway: Gateway, composed: bool):
    dialog_id, parent, child = await app.dialog_with_tones()
    path = f"{DIALOGS}/{dialog_id}"
    body = {**AUDIO, "dialogComposition": {"enabled": composed}, "customData": {"k": "v"}}
    window = await record_window(
        gateway,
        lambda: app.call("POST", f"{path}/start-recording", json=body),
        lambda: app.call("POST", f"{path}/stop-recording"),
    )
    recording = await app.ready(dialog_id=dialog_id)
    assert app.recording_types() == [
        "DIALOG_RECORDING_STARTED",
        "DIALOG_RECORDING_STOPPED",
        "DIALOG_RECORDING_READY",
    ]
    started = app.event("DIALOG_RECORDING_STARTED")
    assert started["dialogId"] == dialog_id and "callId" not in started
    assert started["properties"] == {
        "recordingType": "AUDIO",
        "composition": composed,
        "customData": {"k": "v"},
    }
    assert recording["dialogId"] == dialog_id
    if composed:
        assert "callRecordings" not in recording
        (file,) = recording["composedFiles"]
        pcm = await app.download(file["id"])
        assert abs(seconds(pcm) - window) < 0.3
        assert tone_level(pcm, RATE, 440) > -20 and tone_level(pcm, RATE, 1000) > -20
    else:
        assert "composedFiles" not in recording
        by_call = {r["callId"]: r for r in recording["callRecordings"]}
        assert set(by_call) == {parent, child}
        for call_id, own, other in ((parent, 440, 1000), (child, 1000, 440)):
            (file,) = by_call[call_id]["files"]
            pcm = await app.download(file["id"])
            assert abs(seconds(pcm) - window) < 0.3
            assert tone_level(pcm, RATE, own) > -20, call_id
            assert tone_level(pcm, RATE, other) < -40, call_id
    app.assert_events_conform()
    listed = await app.call("GET", f"{RECORDINGS}/dialogs", params={"composition": composed})
    assert [r["dialogId"] for r in listed["results"]] == [dialog_id]
    other = await app.call("GET", f"{RECORDINGS}/dialogs", params={"composition": not composed})
    assert other["results"] == []
    for call_id, found in ((parent, [dialog_id]), (child, [dialog_id]), ("nope", [])):
        page = await app.call("GET", f"{RECORDINGS}/dialogs", params={"callId": call_id})
        assert [r["dialogId"] for r in page["results"]] == found
    by_endpoint = {"callEndpointType": "PHONE"}
    refused = await app.call("GET", f"{RECORDINGS}/dialogs", 400, params=by_endpoint)
    assert "not available yet" in refused["requestError"]["serviceException"]["text"]
    one = await app.call("GET", f"{RECORDINGS}/dialogs/{dialog_id}")
    assert one["startTime"] and one["endTime"] and one["callsConfigurationId"] == CONFIG


# -- how recordings end -------------------------------------------------------------------


async def test_a_hangup_stops_the_recording_before_the_call_ends(app: RecordingApp, tmp_path):
    call_id = await app.answered()
    await app.call("POST", f"{CALLS}/{call_id}/start-recording", json={"recording": AUDIO})
    await app.recorder.wait_for(types=["CALL_RECORDING_STARTED"], call_id=call_id)
    hung_up = await app.api.post(f"/pstn/1/calls/{call_id}/hangup")  # the caller hangs up
    assert hung_up.status_code == 200, hung_up.text
    await app.ready(call_id=call_id)
    assert app.recorder.types(call_id)[-4:] == [
        "CALL_RECORDING_STARTED",
        "CALL_RECORDING_STOPPED",
        "CALL_FINISHED",
        "CALL_RECORDING_READY",
    ]
    app.assert_events_conform()


async def test_no_file_is_left_open_after_a_hangup_mid_recording(
    app: RecordingApp, gateway: Gateway
):
    dialog_id, parent, child = await app.dialog_with_tones()
    directory = gateway.settings.data_dir / "recordings"
    await app.call("POST", f"{DIALOGS}/{dialog_id}/start-recording", json=AUDIO)
    await app.recorder.wait_for(types=["DIALOG_RECORDING_STARTED"])
    await run_ticks(gateway, 10)
    assert len(open_files(directory)) == 2  # one per participant, while recording
    await app.call("POST", f"{DIALOGS}/{dialog_id}/hangup")
    await app.ready(dialog_id=dialog_id)
    assert open_files(directory) == []
    steps = app.flow(parent, child)
    assert steps.index("DIALOG_RECORDING_STOPPED") < steps.index("CALL_FINISHED child")
    assert steps.index("DIALOG_RECORDING_READY") > steps.index("DIALOG_RECORDING_STOPPED")
    app.assert_events_conform()


async def test_joining_a_conference_stops_a_call_recording(app: RecordingApp):
    call_id = await app.answered()
    await app.call("POST", f"{CALLS}/{call_id}/start-recording", json={"recording": AUDIO})
    await app.recorder.wait_for(types=["CALL_RECORDING_STARTED"], call_id=call_id)
    created = await app.api.post("/calls/1/conferences", json={"callsConfigurationId": CONFIG})
    assert created.status_code == 201, created.text
    added = await app.api.put(f"/calls/1/conferences/{created.json()['id']}/call/{call_id}")
    assert added.status_code == 200, added.text
    recording = await app.ready(call_id=call_id)
    assert recording["status"] == "SUCCESSFUL"
    assert app.recording_types(call_id) == [
        "CALL_RECORDING_STARTED",
        "CALL_RECORDING_STOPPED",
        "CALL_RECORDING_READY",
    ]
    refused = await app.api.post(f"{CALLS}/{call_id}/start-recording", json={"recording": AUDIO})
    assert refused.status_code == 400 and "record the conference" in error_of(refused)["text"]
    await app.api.post(f"{CALLS}/{call_id}/hangup")


async def test_max_duration_stops_the_recording(app: RecordingApp):
    call_id = await app.answered()
    body = {"recording": {**AUDIO, "maxDuration": 1}}
    await app.call("POST", f"{CALLS}/{call_id}/start-recording", json=body)
    started = await app.recorder.wait_for(types=["CALL_RECORDING_STARTED"], call_id=call_id)
    assert started[0]["properties"]["maxDuration"] == 1
    refused = await app.api.post(f"{CALLS}/{call_id}/stop-recording")
    assert refused.status_code == 400 and "maxDuration" in error_of(refused)["text"]
    recording = await app.ready(call_id=call_id)
    (file,) = recording["files"]
    pcm = await app.download(file["id"])
    assert abs(seconds(pcm) - 1.0) < 0.3 and file["duration"] == 1
    assert (await app.api.get(f"{CALLS}/{call_id}")).json()["state"] == "ESTABLISHED"
    await app.api.post(f"{CALLS}/{call_id}/hangup")


async def test_max_silence_stops_the_recording_when_nobody_talks(
    app: RecordingApp, gateway: Gateway
):
    call_id = await app.answered()
    source = f"/pstn/1/calls/{call_id}/source"
    await app.api.put(source, json={"type": "tone", "frequency": 440})
    began = time.monotonic()
    body = {"recording": {**AUDIO, "maxSilence": 1}}
    await app.call("POST", f"{CALLS}/{call_id}/start-recording", json=body)
    refused = await app.api.post(f"{CALLS}/{call_id}/stop-recording")
    assert refused.status_code == 400 and "maxSilence" in error_of(refused)["text"]
    await run_ticks(gateway, 25)
    await app.api.put(source, json={"type": "silence"})
    talked = time.monotonic() - began
    recording = await app.ready(call_id=call_id)
    started = app.event("CALL_RECORDING_STARTED", call_id)["properties"]
    assert started["maxSilence"] == 1
    pcm = await app.download(recording["files"][0]["id"])
    assert abs(seconds(pcm) - (talked + 1.0)) < 0.3
    assert tone_level(pcm[: int(0.4 * RATE)], RATE, 440) > -20
    await app.api.post(f"{CALLS}/{call_id}/hangup")


# -- recording asked for in advance -------------------------------------------------------


async def test_answer_with_recording_starts_it_with_the_answer(app: RecordingApp):
    call_id = await app.inbound()
    body = {"recording": {**AUDIO, "channels": "MONO", "customData": {"a": "1"}}}
    await app.call("POST", f"{CALLS}/{call_id}/answer", json=body)
    await app.recorder.wait_for(types=["CALL_RECORDING_STARTED"], call_id=call_id)
    await app.call("POST", f"{CALLS}/{call_id}/hangup")
    await app.ready(call_id=call_id)
    assert app.recorder.types(call_id) == [
        "CALL_RECEIVED",
        "CALL_ESTABLISHED",
        "CALL_RECORDING_STARTED",
        "CALL_RECORDING_STOPPED",
        "CALL_FINISHED",
        "CALL_RECORDING_READY",
    ]
    one = await app.call("GET", f"{RECORDINGS}/calls/{call_id}")
    assert one["files"][0]["customData"] == {"a": "1"}
    app.assert_events_conform()


async def test_create_call_with_recording_starts_it_when_answered(app: RecordingApp):
    body = {
        "endpoint": {"type": "PHONE", "phoneNumber": ANSWERS},
        "from": "441134960999",
        "callsConfigurationId": CONFIG,
        "recording": {"recordingType": "AUDIO_AND_VIDEO", "filePrefix": "out"},
    }
    call_id = (await app.call("POST", CALLS, 201, json=body))["id"]
    await app.recorder.wait_for(types=["CALL_RECORDING_STARTED"], call_id=call_id)
    started = app.event("CALL_RECORDING_STARTED", call_id)["properties"]
    assert (started["recordingType"], started["filePrefix"]) == ("AUDIO_AND_VIDEO", "out")
    await app.call("POST", f"{CALLS}/{call_id}/hangup")
    await app.ready(call_id=call_id)
    assert app.recorder.types(call_id)[-5:] == [
        "CALL_ESTABLISHED",
        "CALL_RECORDING_STARTED",
        "CALL_RECORDING_STOPPED",
        "CALL_FINISHED",
        "CALL_RECORDING_READY",
    ]


@pytest.mark.parametrize("existing", [False, True], ids=["new-child", "existing-calls"])
async def test_dialog_created_with_recording_records_once_established(
    app: RecordingApp, existing: bool
):
    parent = await app.inbound()
    recording = {**AUDIO, "dialogComposition": {"enabled": True}}
    if existing:
        await app.call("POST", f"{CALLS}/{parent}/answer")
        child = await app.outbound(parent=parent)
        path = f"{DIALOGS}/parent-call/{parent}/child-call/{child}"
        dialog = await app.call("POST", path, 201, json={"recording": recording})
    else:
        dialog = await app.dialog(parent, ANSWERS, recording=recording)
        child = dialog["childCall"]["id"]
    await app.recorder.wait_for(types=["DIALOG_RECORDING_STARTED"])
    steps = app.flow(parent, child)
    assert steps.index("DIALOG_ESTABLISHED") < steps.index("DIALOG_RECORDING_STARTED")
    await app.api.post(f"/pstn/1/calls/{child}/hangup")
    await app.ready(dialog_id=dialog["id"])
    await app.wait(dialog["id"], "DIALOG_FINISHED")
    steps = app.flow(parent, child)
    assert steps.index("DIALOG_RECORDING_STOPPED") < steps.index("CALL_FINISHED child")
    app.assert_events_conform()


# -- the recordings API -------------------------------------------------------------------


async def test_download_with_ranges_and_delete(app: RecordingApp, gateway: Gateway):
    call_id = await app.answered()
    await app.call("POST", f"{CALLS}/{call_id}/start-recording", json={"recording": AUDIO})
    await run_ticks(gateway, 25)
    await app.call("POST", f"{CALLS}/{call_id}/stop-recording")
    file = (await app.ready(call_id=call_id))["files"][0]
    url = f"{RECORDINGS}/files/{file['id']}"
    whole = await app.api.get(url)
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "application/octet-stream"
    assert len(whole.content) == file["size"] and whole.content[:4] == b"RIFF"

    for header, first, last in [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, file["size"] - 1),
        ("bytes=-44", file["size"] - 44, file["size"] - 1),
        (f"bytes=10-{file['size'] * 2}", 10, file["size"] - 1),
    ]:
        part = await app.api.get(url, headers={"Range": header})
        assert part.status_code == 206, (header, part.text)
        assert part.headers["content-range"] == f"bytes {first}-{last}/{file['size']}"
        assert part.content == whole.content[first : last + 1]
    for header in [f"bytes={file['size']}-", "bytes=9-3", "bytes=abc", "bytes=-0"]:
        refused = await app.api.get(url, headers={"Range": header})
        assert refused.status_code == 416, header
        assert refused.headers["content-range"] == f"bytes */{file['size']}"
        app.spec.validate("GET", url, 416, refused.json(), strict=True)
    assert (await app.api.get(url, headers={"Range": "pages=1-2"})).status_code == 200
    several = await app.api.get(url, headers={"Range": "bytes=0-9,40-49"})
    assert several.status_code == 206
    assert several.headers["content-type"].startswith("multipart/byteranges; boundary=")
    for first, last in ((0, 9), (40, 49)):
        assert f"Content-Range: bytes {first}-{last}/{file['size']}".encode() in several.content
        assert whole.content[first : last + 1] in several.content
    unchanged = {"If-Range": whole.headers["etag"], "Range": "bytes=0-3"}
    assert (await app.api.get(url, headers=unchanged)).content == b"RIFF"

    listed = await app.call("GET", f"{RECORDINGS}/calls", params={"callId": call_id})
    assert [r["callId"] for r in listed["results"]] == [call_id]
    assert listed["paging"]["totalResults"] == 1
    for params in ({"direction": "OUTBOUND"}, {"callsConfigurationId": "other"}):
        assert (await app.call("GET", f"{RECORDINGS}/calls", params=params))["results"] == []
    filtered = {"endpointType": "PHONE", "direction": "INBOUND", "callsConfigurationId": CONFIG}
    assert (await app.call("GET", f"{RECORDINGS}/calls", params=filtered))["results"]

    deleted = await app.call("DELETE", url)
    assert deleted["id"] == file["id"]
    assert not (gateway.settings.data_dir / "recordings" / file["name"]).exists()
    await app.call("GET", url, 404)
    await app.call("GET", f"{RECORDINGS}/calls/{call_id}", 404)
    await app.call("DELETE", url, 404)


async def test_deleting_a_call_or_dialog_recording(app: RecordingApp, gateway: Gateway):
    dialog_id, parent, _ = await app.dialog_with_tones()
    for count in (1, 2):  # two recordings of the call: two files
        await app.call("POST", f"{CALLS}/{parent}/start-recording", json={"recording": AUDIO})
        await run_ticks(gateway, 5)
        await app.call("POST", f"{CALLS}/{parent}/stop-recording")
        await app.ready(call_id=parent, count=count)
    await app.call("POST", f"{DIALOGS}/{dialog_id}/start-recording", json=AUDIO)
    await run_ticks(gateway, 5)
    await app.call("POST", f"{DIALOGS}/{dialog_id}/stop-recording")
    await app.ready(dialog_id=dialog_id)

    one = await app.call("GET", f"{RECORDINGS}/calls/{parent}")
    assert len(one["files"]) == 2
    deleted = await app.call("DELETE", f"{RECORDINGS}/calls/{parent}")
    assert [f["id"] for f in deleted["files"]] == [f["id"] for f in one["files"]]
    await app.call("GET", f"{RECORDINGS}/calls/{parent}", 404)
    dialog = await app.call("DELETE", f"{RECORDINGS}/dialogs/{dialog_id}")
    assert len(dialog["callRecordings"]) == 2
    await app.call("GET", f"{RECORDINGS}/dialogs/{dialog_id}", 404)
    await app.call("DELETE", f"{RECORDINGS}/dialogs/{dialog_id}", 404)
    assert list((gateway.settings.data_dir / "recordings").iterdir()) == []


# -- refused and failed -------------------------------------------------------------------


async def test_bad_requests(app: RecordingApp):
    dialog_id, parent, child = await app.dialog_with_tones()
    start = f"{CALLS}/{parent}/start-recording"

    cases: list[tuple[str, dict[str, Any], str]] = [
        (start, {}, "recording"),
        (start, {"recording": {}}, "recording.recordingType"),
        (start, {"recording": {**AUDIO, "maxSilence": 0}}, "recording.maxSilence"),
        (start, {"recording": {**AUDIO, "beep": "twice"}}, "recording.beep"),
        (start, {"recording": {**AUDIO, "maxDuration": 0}}, "recording.maxDuration"),
        (start, {"recording": {**AUDIO, "filePrefix": "no spaces"}}, "recording.filePrefix"),
        (start, {"recording": {**AUDIO, "channels": "MONO"}}, "recording.channels"),
        (f"{DIALOGS}/{dialog_id}/start-recording", {}, "recordingType"),
    ]
    for path, body, field in cases:
        response = await app.api.post(path, json=body)
        assert response.status_code == 400, (body, response.text)
        assert field in error_of(response)["validationErrors"], (body, response.text)
        app.spec.validate("POST", path, 400, response.json(), strict=True)

    quad = {
        "endpoint": {"type": "PHONE", "phoneNumber": ANSWERS},
        "callsConfigurationId": CONFIG,
        "recording": {**AUDIO, "channels": "QUAD"},
    }
    before = (await app.api.get(CALLS)).json()["paging"]["totalResults"]
    response = await app.api.post(CALLS, json=quad)
    assert response.status_code == 400
    assert "recording.channels" in error_of(response)["validationErrors"]
    assert (await app.api.get(CALLS)).json()["paging"]["totalResults"] == before

    async def text(path: str, status: int, body: Any = None) -> str:
        response = await app.api.post(path, json=body)
        assert response.status_code == status, response.text
        app.spec.validate("POST", path, status, response.json(), strict=True)
        return error_of(response)["text"]

    assert "not being recorded" in await text(f"{CALLS}/{parent}/stop-recording", 400)
    assert "not being recorded" in await text(f"{DIALOGS}/{dialog_id}/stop-recording", 400)
    assert "was not found" in await text(f"{CALLS}/nope/start-recording", 404, {"recording": AUDIO})
    assert "was not found" in await text(f"{CALLS}/nope/stop-recording", 404)
    assert "was not found" in await text(f"{DIALOGS}/nope/start-recording", 404, AUDIO)
    assert "was not found" in await text(f"{DIALOGS}/nope/stop-recording", 404)

    await app.call("POST", start, json={"recording": AUDIO})
    assert "already being recorded" in await text(start, 400, {"recording": AUDIO})
    dialog_start = f"{DIALOGS}/{dialog_id}/start-recording"
    assert "mutually exclusive" in await text(dialog_start, 400, AUDIO)
    # A new dialog with recording for a call being recorded: refused before anything is made.
    since = len(app.recorder.events())
    other = await app.inbound()
    await app.call("POST", f"{CALLS}/{other}/answer")
    await app.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=other)
    await app.call("POST", f"{CALLS}/{other}/start-recording", json={"recording": AUDIO})
    body = {
        "parentCallId": other,
        "childCallRequest": {"endpoint": {"type": "PHONE", "phoneNumber": SILENT}},
        "recording": AUDIO,
    }
    assert "mutually exclusive" in await text(DIALOGS, 400, body)
    assert not [e for e in app.recorder.events()[since:] if e["type"].startswith("DIALOG_")]

    await app.call("POST", f"{CALLS}/{parent}/stop-recording")
    await app.call("POST", dialog_start, json=AUDIO)
    assert "already being recorded" in await text(dialog_start, 400, AUDIO)
    assert "mutually exclusive" in await text(start, 400, {"recording": AUDIO})
    assert "mutually exclusive" in await text(
        f"{CALLS}/{child}/start-recording", 400, {"recording": AUDIO}
    )

    ringing = await app.inbound()
    assert "state RINGING" in await text(
        f"{CALLS}/{ringing}/start-recording", 400, {"recording": AUDIO}
    )
    for path in (f"{RECORDINGS}/files/nope", f"{RECORDINGS}/calls/nope"):
        await app.call("GET", path, 404)
    await app.call("GET", f"{RECORDINGS}/dialogs/nope", 404)
    await app.call("GET", f"{RECORDINGS}/calls", 400, params={"startTimeAfter": "yesterday"})
    await app.call("GET", f"{RECORDINGS}/calls", 400, params={"size": 0})


async def test_a_file_that_cannot_be_created_fails_the_recording(
    app: RecordingApp, gateway: Gateway
):
    directory = gateway.settings.data_dir / "recordings"
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.write_text("a file where the directory should be")
    call_id = await app.answered()
    body = {"recording": {**AUDIO, "customData": {"why": "test"}}}
    await app.call("POST", f"{CALLS}/{call_id}/start-recording", json=body)
    failed = await app.recorder.wait_for(types=["CALL_RECORDING_FAILED"], call_id=call_id)
    properties = failed[0]["properties"]
    assert "could not be created" in properties["reason"]
    assert properties["recordingCustomData"] == {"why": "test"}
    assert app.recording_types(call_id) == ["CALL_RECORDING_FAILED"]
    one = await app.call("GET", f"{RECORDINGS}/calls/{call_id}")
    assert (one["status"], one["files"]) == ("FAILED", [])
    await app.call("GET", f"{RECORDINGS}/files/{properties['fileId']}", 404)
    # Nothing is left recording: the call can be recorded again once the disk is fixed.
    directory.unlink()
    await app.call("POST", f"{CALLS}/{call_id}/start-recording", json={"recording": AUDIO})
    await app.recorder.wait_for(types=["CALL_RECORDING_STARTED"], call_id=call_id)
    app.assert_events_conform()


async def test_a_write_that_fails_mid_recording_fails_it(
    app: RecordingApp, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
):
    call_id = await app.answered()
    await app.call("POST", f"{CALLS}/{call_id}/start-recording", json={"recording": AUDIO})
    await run_ticks(gateway, 5)

    def disk_full(self, pcm: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gateway.media.recorder.WavWriter.write", disk_full)
    failed = await app.recorder.wait_for(types=["CALL_RECORDING_FAILED"], call_id=call_id)
    assert "No space left" in failed[0]["properties"]["reason"]
    assert app.recording_types(call_id) == ["CALL_RECORDING_STARTED", "CALL_RECORDING_FAILED"]
    assert open_files(gateway.settings.data_dir / "recordings") == []
    assert (
        "not being recorded"
        in error_of(await app.api.post(f"{CALLS}/{call_id}/stop-recording"))["text"]
    )


async def test_files_left_recording_by_a_crash_are_failed_on_start(gateway: Gateway):
    store = SqlRecordingStore(gateway.db)
    start = gateway.calls._clock()
    store.save(RecordingFile("f-1", CONFIG, start, call_id="c-1"))
    assert gateway.recordings.recover() == 1
    file = store.get("f-1")
    assert file is not None and file.status is FileStatus.FAILED and file.end_time == start
    assert gateway.recordings.recover() == 0


# -- the recorder on its own --------------------------------------------------------------


def test_the_recorder_fills_gaps_and_picks_rows(tmp_path: Path):
    now = [0.0]
    mixed, own = tmp_path / "mixed.wav", tmp_path / "own.wav"
    recorder = Recorder([Track(mixed), Track(own, "b")], lambda error: None, lambda: now[0])
    frames = np.full((2, 160), 1000, dtype=np.int16)
    frames[1] = 30000
    recorder(("a", "b"), frames)  # summed and clipped; b's own row
    now[0] = 0.2  # ten frames due, one written: nine of silence first
    recorder(("a",), frames[:1])  # b is not in the bridge any more: silence for b
    now[0] = 0.22
    recorder.stop()
    recorder(("a", "b"), frames)  # after stop: ignored
    assert recorder.close() == [HEADER_SIZE + 11 * 320] * 2
    pcm, _ = read_wav(mixed)
    assert len(pcm) == 11 * 160
    assert (pcm[:160] == 31000).all() and (pcm[160:1600] == 0).all()
    assert (pcm[1600:] == 1000).all()
    pcm, _ = read_wav(own)
    assert (pcm[:160] == 30000).all() and (pcm[160:] == 0).all()


async def test_a_recording_keeps_time_while_its_legs_are_being_moved(tmp_path: Path):
    """Tapped while a pair is on its way to bypass: no frames come until the re-INVITEs are
    done and the pair is anchored again; the file has silence there, not a shorter timeline."""

    moving = asyncio.Event()

    class SlowCalls(FakeCalls):
        async def redirect_media(self, leg_id: str, target: Any) -> Any:
            moving.set()
            await asyncio.sleep(0.15)  # a re-INVITE's round trip, each way
            return await super().redirect_media(leg_id, target)

    a, b = sip_pair()
    plane = MediaPlane()
    bridges = MediaBridges(SlowCalls(a, b), plane)  # type: ignore[arg-type]
    try:
        bridges.join("a", "b")  # moving to bypass: the first re-INVITE is on its way
        async with asyncio.timeout(5):
            await moving.wait()
        recorder = Recorder([Track(tmp_path / "pair.wav")], lambda error: None)
        began = time.monotonic()
        bridges.tap("a", recorder)
        await bridges.settled()  # to bypass, then back to the gateway for the tap
        await asyncio.sleep(0.3)
        recorder.stop()
        elapsed = time.monotonic() - began
        bridges.untap("a", recorder)
        recorder.close()
    finally:
        await bridges.settled()
        plane.close()
    pcm, _ = read_wav(tmp_path / "pair.wav")
    assert abs(seconds(pcm) - elapsed) < 0.1
    assert (pcm[: int(0.2 * RATE)] == 0).all()  # while the legs were being moved
    assert (pcm[-int(0.2 * RATE) :] == 4000).all()  # both legs, summed, once anchored
