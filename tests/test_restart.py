"""Events survive a webhook outage and a gateway restart: each arrives once, in order."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from gateway.testing.app import prepare_app
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.conftest import start_gateway_process, stop_gateway_process


async def wait_state(http: httpx.AsyncClient, call_id: str, state: str) -> None:
    async with asyncio.timeout(10):
        while (await http.get(f"/calls/1/calls/{call_id}")).json()["state"] != state:
            await asyncio.sleep(0.02)


def headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"App {api_key}"}


async def test_outage_across_a_restart_loses_and_repeats_nothing(tmp_path):
    data_dir = tmp_path / "data"
    async with WebhookRecorder() as recorder:
        recorder.fail_with(503)
        first = await asyncio.to_thread(start_gateway_process, data_dir)
        try:
            async with httpx.AsyncClient(
                base_url=first.base_url, headers=headers(first.api_key)
            ) as http:
                await prepare_app(http, recorder.url, "app", numbers=["441134960100"])
                await http.post(
                    "/pstn/1/numbers",
                    json={
                        "number": "15550000007",
                        "behaviour": "hangup-after",
                        "options": {"answerAfterMs": 20, "hangupAfterMs": 50},
                    },
                )
                outbound = (
                    await http.post(
                        "/calls/1/calls",
                        json={
                            "endpoint": {"type": "PHONE", "phoneNumber": "15550000007"},
                            "from": "441134960999",
                            "callsConfigurationId": "app",
                        },
                    )
                ).json()["id"]
                inbound = (
                    await http.post(
                        "/pstn/1/calls", json={"from": "15557654321", "to": "441134960100"}
                    )
                ).json()["callId"]
                await wait_state(http, outbound, "FINISHED")
                # Every event so far has been refused at least once: the receiver is down.
                await recorder.wait_for(types=["CALL_STARTED"], call_id=outbound, rejected=True)
        finally:
            assert await asyncio.to_thread(stop_gateway_process, first) == 0
        assert recorder.events() == []

        second = await asyncio.to_thread(start_gateway_process, data_dir)
        try:
            recorder.recover()
            await recorder.wait_for(types=["CALL_FINISHED"], call_id=outbound, timeout=15)
            await recorder.wait_for(types=["CALL_FAILED"], call_id=inbound, timeout=15)
        finally:
            assert await asyncio.to_thread(stop_gateway_process, second) == 0

    assert recorder.types(outbound) == [
        "CALL_STARTED",
        "CALL_RINGING",
        "CALL_ESTABLISHED",
        "CALL_FINISHED",
    ]
    # The inbound call was still ringing when the first gateway stopped: it ended the call.
    assert recorder.types(inbound) == ["CALL_RECEIVED", "CALL_FAILED"]
    log = recorder.events(inbound)[-1]["properties"]["callLog"]
    assert (log["state"], log["errorCode"]["name"], log["hangupSource"]) == (
        "FAILED",
        "SERVICE_UNAVAILABLE",
        "PLATFORM",
    )
    delivered = [r for r in recorder.requests if r.accepted]
    ids = Counter(r.headers["x-gateway-event-id"] for r in delivered)
    assert len(delivered) == 6 and set(ids.values()) == {1}
