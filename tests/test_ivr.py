"""The README's IVR (examples/ivr.py) end to end: a real `gateway serve`, the example app on the
official Infobip client, and a caller that presses 2 — a simulated phone keying in-band in one
run and by RFC 4733 in another, then baresip over SIP with RTP.

Each run checks what the caller heard (the menu's speech, then the file's 500 Hz), the exact
order of the app's events, and the recording the app downloaded: three seconds of the
caller's tone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn

from examples import ivr as example
from gateway.testing.audio import dominant_frequency, read_wav
from tests.conftest import (
    ServedGateway,
    free_port,
    start_gateway_process,
    stop_gateway_process,
)
from tests.sip.baresip import BARESIP, Account, Baresip

CALLER = "15557654321"
CALLER_TONE = 800
FLOW = [
    "CALL_RECEIVED", "CALL_ESTABLISHED", "SAY_FINISHED", "DTMF_CAPTURED", "PLAY_FINISHED",
    "CALL_RECORDING_READY", "CALL_FINISHED",
]  # fmt: skip


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"waited {timeout}s for {what}") from None


@asynccontextmanager
async def ivr_app(served: ServedGateway, directory: Path) -> AsyncIterator[example.Ivr]:
    """The example app, served on loopback in this loop; set up against the gateway."""
    port = free_port()
    ivr = await asyncio.to_thread(
        example.set_up, served.base_url, served.api_key, f"http://127.0.0.1:{port}/events",
        directory,
    )  # fmt: skip
    config = uvicorn.Config(
        example.create_app(ivr), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started, 10, "the IVR app to listen")
    try:
        yield ivr
    finally:
        server.should_exit = True
        await task


SIP_PORTS: dict[str, int] = {}  # a served gateway's base URL -> its SIP port


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[ServedGateway]:
    sip_port = free_port()
    # baresip 1.0 answers MD5 digest challenges only (see tests/sip/test_baresip.py)
    env = {"GATEWAY_SIP_DIGEST_ALGORITHMS": "MD5", "GATEWAY_SIP_PORT": str(sip_port)}
    served = start_gateway_process(tmp_path / "data", env)
    SIP_PORTS[served.base_url] = sip_port
    yield served
    stop_gateway_process(served)


def types(ivr: example.Ivr, call_id: str) -> list[str]:
    return [e["type"] for e in ivr.seen if e.get("callId") == call_id]


async def ended(ivr: example.Ivr, call_id: str) -> None:
    await until(lambda: "CALL_FINISHED" in types(ivr, call_id), 30, "the call to end")


def check_recording(ivr: example.Ivr, call_id: str) -> None:
    pcm, rate = read_wav(ivr.saved[call_id].read_bytes())
    assert rate == 8000
    assert abs(len(pcm) / rate - example.RECORD_SECONDS) <= 0.1, len(pcm) / rate
    assert abs(dominant_frequency(pcm.astype(np.float64), rate) - CALLER_TONE) < 5


def check_heard(heard: np.ndarray, rate: int = 8000) -> None:
    """The caller heard speech (the menu), then the app's 500 Hz file."""
    samples = heard.astype(np.float64)
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > 300)
    assert len(loud) > 25, "the caller heard almost nothing"
    chime = [f for f in loud if abs(dominant_frequency(frames[f], rate) - 500) < 30]
    assert len(chime) >= 20  # about half a second of the file
    assert loud[0] < chime[0]  # the menu came first


@pytest.mark.parametrize("mode", ["inband", "rfc4733"])
async def test_ivr_with_a_simulated_caller(gateway_process: ServedGateway, tmp_path: Path, mode):
    headers = {"Authorization": f"App {gateway_process.api_key}"}
    async with (
        httpx.AsyncClient(base_url=gateway_process.base_url, headers=headers) as http,
        ivr_app(gateway_process, tmp_path) as ivr,
    ):
        placed = await http.post("/pstn/1/calls", json={"from": CALLER, "to": example.NUMBER})
        assert placed.status_code == 201, placed.text
        call_id = placed.json()["callId"]
        await until(lambda: call_id in ivr.waiting_for_key, 20, "the menu to be over")
        tone = {"type": "tone", "frequency": CALLER_TONE}
        assert (await http.put(f"/pstn/1/calls/{call_id}/source", json=tone)).status_code == 200
        keyed = await http.post(f"/pstn/1/calls/{call_id}/dtmf", json={"digits": "2", "mode": mode})
        assert keyed.status_code in (200, 202), keyed.text
        await ended(ivr, call_id)
        heard, _ = read_wav((await http.get(f"/pstn/1/calls/{call_id}/heard")).content)
    assert types(ivr, call_id) == FLOW
    captured = next(e for e in ivr.seen if e["type"] == "DTMF_CAPTURED")
    assert captured["properties"]["dtmf"] == "2"
    check_recording(ivr, call_id)
    check_heard(heard)


@pytest.mark.skipif(BARESIP is None, reason="baresip is not on PATH")
async def test_ivr_with_a_sip_caller(gateway_process: ServedGateway, tmp_path: Path):
    """baresip registers, dials the number, sends its 800 Hz and keys 2 (RFC 4733)."""
    headers = {"Authorization": f"App {gateway_process.api_key}"}
    trunk_body = {"type": "REGISTERED", "name": "phone", "channelLimit": 2,
                  "billingPackage": {"packageType": "METERED"}}  # fmt: skip
    async with (
        httpx.AsyncClient(base_url=gateway_process.base_url, headers=headers) as http,
        ivr_app(gateway_process, tmp_path) as ivr,
    ):
        trunk = (await http.post("/calls/1/sip-trunks", json=trunk_body)).json()
        sip_port = SIP_PORTS[gateway_process.base_url]
        account = Account(trunk["username"], trunk["password"], f"127.0.0.1:{sip_port}")
        phone_dir = tmp_path / "baresip"
        async with Baresip.start(phone_dir, account, record=True, tone=CALLER_TONE) as phone:
            await phone.wait_registered()
            await phone.command("dial", f"sip:{example.NUMBER}@127.0.0.1:{sip_port}")
            await until(lambda: bool(ivr.seen), 15, "the call to come in")
            call_id = ivr.seen[0]["callId"]
            await until(lambda: call_id in ivr.waiting_for_key, 20, "the menu to be over")
            await phone.command("sndcode", "2")
            await ended(ivr, call_id)
            await phone.wait_event("CALL_CLOSED", timeout=10)
        heard_files = sorted((phone_dir / "recordings").glob("*-dec.wav"))
        assert heard_files, "baresip recorded nothing"
        heard, rate = read_wav(heard_files[-1].read_bytes())
    assert types(ivr, call_id) == FLOW
    check_recording(ivr, call_id)
    check_heard(heard if rate == 8000 else heard[:: rate // 8000])
