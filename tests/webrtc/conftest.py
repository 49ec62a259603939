"""A gateway served on a loopback port (WebSockets need a real server), an app with a
webhook, and tokens for the test peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from gateway.app import Gateway
from gateway.testing.app import CALL_EVENTS, prepare_app
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.conftest import API_KEY, fast_settings

CONFIG = "webrtc-app"
DID = "441134960200"
CALLER = "15557654321"
PHONE = "15550200001"  # answers at once


@dataclass
class WebRtcWorld:
    gateway: Gateway
    api: httpx.AsyncClient
    recorder: WebhookRecorder
    ws_url: str

    async def dialog_to(self, identity: str) -> tuple[str, str]:
        """A simulated phone calls the app, which dials ``identity`` in a dialog: the ids of
        the phone's call and of the new WEBRTC call (ringing at the identity's sockets)."""
        placed = await self.api.post("/pstn/1/calls", json={"from": CALLER, "to": DID})
        parent = placed.json()["callId"]
        await self.recorder.wait_for(types=["CALL_RECEIVED"], call_id=parent)
        child_request = {"endpoint": {"type": "WEBRTC", "identity": identity}}
        body = {"parentCallId": parent, "childCallRequest": child_request}
        created = await self.api.post("/calls/1/dialogs", json=body)
        assert created.status_code == 201, created.text
        return parent, created.json()["childCall"]["id"]

    async def token(self, identity: str, **extra: object) -> str:
        body = {"identity": identity, "applicationId": CONFIG, **extra}
        issued = await self.api.post("/webrtc/1/token", json=body)
        assert issued.status_code == 200, issued.text
        return issued.json()["token"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[WebRtcWorld]:
    settings = fast_settings(
        tmp_path / "data", webrtc_host_addresses="127.0.0.1", webrtc_media_timeout=1.0
    )
    gateway = Gateway.build(settings)
    await gateway.start()
    server = uvicorn.Server(
        uvicorn.Config(
            gateway.api,
            host="127.0.0.1",
            port=settings.http_port,
            lifespan="off",
            log_level="warning",
        )
    )
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(5):
        while not server.started:
            await asyncio.sleep(0.01)
    base = f"127.0.0.1:{settings.http_port}"
    async with (
        httpx.AsyncClient(  # REST in process, as elsewhere; only the socket needs the server
            transport=httpx.ASGITransport(app=gateway.api),
            base_url="http://gateway",
            headers={"Authorization": f"App {API_KEY}"},
        ) as api,
        WebhookRecorder() as recorder,
    ):
        simulated = {PHONE: ("answer", {"ringAfterMs": 0, "answerAfterMs": 20})}
        events = [
            *CALL_EVENTS,
            "DTMF_CAPTURED",
            "CALL_MEDIA_CHANGED",
            "PARTICIPANT_MEDIA_CHANGED",
            "PLAY_FINISHED",
            "CALL_RECORDING_READY",
            "PARTICIPANT_JOINED",
        ]
        await prepare_app(
            api, recorder.url, CONFIG, numbers=[DID], events=events, simulated=simulated
        )
        yield WebRtcWorld(gateway, api, recorder, f"ws://{base}/webrtc/1/signalling")
        await gateway.stop()
    server.should_exit = True
    await serving
