"""A complete IVR on the gateway, written with the official Infobip Python client.

A caller dials the app's number. The app answers, says a menu and waits for a key. On 2 it
plays an uploaded file, records three seconds of the caller, saves the recording beside it
(``recording-<callId>.wav``) and hangs up. Any other key repeats the menu; no key hangs up.

The app is a webhook (FastAPI): the gateway posts each event of its calls to ``/events``, and
the app answers each with API calls through ``infobip-api-python-client``, exactly as it would
against the cloud; only the base URL and the key differ. Run it beside the gateway::

    make run                                   # terminal 1: the gateway on 127.0.0.1:8080
    .venv/bin/python examples/ivr.py           # terminal 2: this app on 127.0.0.1:8090
    # terminal 3: a simulated phone calls the app's number and presses 2
    KEY=$(cat data/api-key); H="Authorization: App $KEY"
    CALL=$(curl -s -H "$H" -H 'Content-Type: application/json' -d \
        '{"from": "15557654321", "to": "441134960100"}' localhost:8080/pstn/1/calls | jq -r .callId)
    sleep 3; curl -s -H "$H" -H 'Content-Type: application/json' -d '{"digits": "2"}' \
        localhost:8080/pstn/1/calls/$CALL/dtmf

A SIP phone registered to the gateway can call the number instead; see the README.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import warnings
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI
from infobip_api_client import ApiClient, Configuration
from infobip_api_client.api.calls_api import CallsApi
from infobip_api_client.models.calls_answer_request import CallsAnswerRequest
from infobip_api_client.models.calls_dtmf_capture_request import CallsDtmfCaptureRequest
from infobip_api_client.models.calls_file_play_content import CallsFilePlayContent
from infobip_api_client.models.calls_hangup_request import CallsHangupRequest
from infobip_api_client.models.calls_play_request import CallsPlayRequest
from infobip_api_client.models.calls_recording_request import CallsRecordingRequest
from infobip_api_client.models.calls_recording_start_request import CallsRecordingStartRequest
from infobip_api_client.models.calls_say_request import CallsSayRequest

log = logging.getLogger("ivr")
# The official client's own models warn when they serialise a content type; nothing of ours.
warnings.filterwarnings("ignore", message="Pydantic serializer warnings")

CONFIGURATION = "ivr"
NUMBER = "441134960100"
EVENTS = [
    "CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED", "CALL_FAILED", "SAY_FINISHED",
    "DTMF_CAPTURED", "PLAY_FINISHED", "CALL_RECORDING_READY", "CALL_RECORDING_FAILED", "ERROR",
]  # fmt: skip
MENU = "Welcome. For sales, press 2."
RECORD_SECONDS = 3


def chime() -> bytes:
    """The file the app plays: half a second of 500 Hz, as an 8 kHz WAV."""
    t = np.arange(4000) / 8000
    samples = (0.3 * 32767 * np.sin(2 * np.pi * 500 * t)).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


class Ivr:
    """The call flow: one webhook event in, the API calls it leads to out."""

    def __init__(self, calls: CallsApi, prompt_file_id: str, recordings: Path) -> None:
        self.calls = calls
        self.prompt_file_id = prompt_file_id
        self.recordings = recordings
        self.waiting_for_key: set[str] = set()  # calls whose menu is over, capture running
        self.saved: dict[str, Path] = {}  # call id -> the recording downloaded
        self.seen: list[dict[str, Any]] = []  # every event, in the order it came

    def handle(self, event: dict[str, Any]) -> None:
        self.seen.append(event)
        call_id, kind = event.get("callId"), event.get("type")
        properties = event.get("properties") or {}
        log.info("%s %s %s", call_id, kind, properties if kind != "CALL_RECEIVED" else "")
        if call_id is None:
            return
        if kind == "DTMF_CAPTURED":
            self.waiting_for_key.discard(call_id)
        if kind == "CALL_RECEIVED":
            self.calls.answer_call(call_id, CallsAnswerRequest())
        elif kind == "CALL_ESTABLISHED" or (kind == "DTMF_CAPTURED" and not properties["timeout"]
                                            and properties["dtmf"] != "2"):  # fmt: skip
            self.calls.call_say_text(call_id, CallsSayRequest(text=MENU, language="en"))
        elif kind == "SAY_FINISHED":
            capture = CallsDtmfCaptureRequest(max_length=1, timeout=10_000)
            self.calls.call_capture_dtmf(call_id, capture)
            self.waiting_for_key.add(call_id)
        elif kind == "DTMF_CAPTURED" and properties["dtmf"] == "2":
            content = CallsFilePlayContent(file_id=self.prompt_file_id)
            self.calls.call_play_file(call_id, CallsPlayRequest(content=content))
        elif kind == "PLAY_FINISHED":
            recording = CallsRecordingRequest(recording_type="AUDIO", max_duration=RECORD_SECONDS)
            start = CallsRecordingStartRequest(recording=recording)
            self.calls.call_start_recording(call_id, start)
        elif kind == "CALL_RECORDING_READY":
            for file in properties["recording"]["files"]:
                path = self.recordings / f"recording-{call_id}.wav"
                path.write_bytes(bytes(self.calls.download_recording_file(file["id"])))
                self.saved[call_id] = path
            self.calls.hangup_call(call_id, CallsHangupRequest(error_code="NORMAL_HANGUP"))
        elif kind in ("DTMF_CAPTURED", "ERROR", "CALL_RECORDING_FAILED"):  # no key, or a failure
            self.calls.hangup_call(call_id, CallsHangupRequest(error_code="NORMAL_HANGUP"))


def create_app(ivr: Ivr) -> FastAPI:
    app = FastAPI(title="IVR example")

    @app.post("/events")
    def events(event: dict[str, Any]) -> dict[str, str]:
        """A plain ``def``: FastAPI runs it in a thread, where the synchronous client may block."""
        ivr.handle(event)
        return {"status": "OK"}

    return app


def set_up(gateway_url: str, api_key: str, webhook_url: str, recordings: Path) -> Ivr:
    """Create the app's configuration, subscribe its webhook to the events above, give it the
    number, upload the file it plays. The subscription and the number use plain HTTP: the
    first is the Subscriptions API, the second the gateway's own /gateway/1/numbers."""
    headers = {"Authorization": f"App {api_key}"}
    with httpx.Client(base_url=gateway_url, headers=headers) as http:
        created = http.post("/calls/1/configurations", json={"id": CONFIGURATION})
        if created.status_code not in (201, 409):
            created.raise_for_status()
        http.delete(f"/subscriptions/1/subscription/VOICE_VIDEO/{CONFIGURATION}-events")
        subscription = {
            "subscriptionId": f"{CONFIGURATION}-events",
            "name": "IVR example",
            "events": EVENTS,
            "criteria": [{"callsConfigurationId": CONFIGURATION}],
            "profile": {
                "profileId": f"{CONFIGURATION}-webhook",
                "webhook": {"notifyUrl": webhook_url},
            },
        }
        http.post("/subscriptions/1/subscription/VOICE_VIDEO", json=subscription).raise_for_status()
        body = {"callsConfigurationId": CONFIGURATION}
        http.put(f"/gateway/1/numbers/{NUMBER}", json=body).raise_for_status()
    calls = CallsApi(ApiClient(Configuration(host=gateway_url, api_key=api_key)))
    uploaded = calls.upload_calls_audio_file(chime())
    return Ivr(calls, uploaded.id, recordings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    key_help = "the API key (default: $GATEWAY_API_KEY, else data/api-key)"
    parser.add_argument("--key", default=os.environ.get("GATEWAY_API_KEY"), help=key_help)
    parser.add_argument("--listen", default="127.0.0.1:8090", help="host:port of the webhook")
    args = parser.parse_args()
    key = args.key or Path("data/api-key").read_text().strip()
    host, port = args.listen.rsplit(":", 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ivr = set_up(args.gateway, key, f"http://{args.listen}/events", Path.cwd())
    uvicorn.run(create_app(ivr), host=host, port=int(port), log_level="warning")


if __name__ == "__main__":
    main()
