"""End to end through the official `infobip-api-python-client`, unmodified but for host and key.

A real `gateway serve` process, the official client in a worker thread (it is synchronous), and
a webhook receiver on loopback that checks the exact event sequence and JSON of each scenario.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from infobip_api_client import ApiClient, Configuration
from infobip_api_client.api.calls_api import CallsApi
from infobip_api_client.exceptions import ApiException
from infobip_api_client.models.call_request import CallRequest
from infobip_api_client.models.calls_answer_request import CallsAnswerRequest
from infobip_api_client.models.calls_configuration_create_request import (
    CallsConfigurationCreateRequest,
)
from infobip_api_client.models.calls_hangup_request import CallsHangupRequest
from infobip_api_client.models.calls_phone_endpoint import CallsPhoneEndpoint

from gateway.testing.app import prepare_app
from gateway.testing.webhook_recorder import WebhookRecorder

CALLER = "15557654321"
DID = "441134960100"
# Fast simulated numbers, so that each scenario takes a fraction of a second.
NUMBERS = {
    "answers": ("15550000001", "answer", {"answerAfterMs": 100}),
    "hangs-up": ("15550000002", "hangup-after", {"answerAfterMs": 50, "hangupAfterMs": 150}),
    "busy": ("15550000003", "busy", {"delayMs": 50}),
    "silent": ("15550000004", "no-answer", {}),
    "broken": ("15550000005", "fail", {"delayMs": 50, "sipStatus": 503}),
    "announces": ("15550000006", "early-media", {"earlyMediaMs": 150}),
}


class World:
    """The client, the recorder and a configuration whose events reach the recorder."""

    def __init__(
        self, calls: CallsApi, http: httpx.AsyncClient, recorder: WebhookRecorder, config_id: str
    ) -> None:
        self.calls = calls
        self.http = http
        self.recorder = recorder
        self.config_id = config_id

    async def client(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self.calls, method), *args)

    async def dial(self, name: str, connect_timeout: int = 10) -> str:
        request = CallRequest(
            endpoint=CallsPhoneEndpoint(phone_number=NUMBERS[name][0]),
            var_from="441134960999",
            connect_timeout=connect_timeout,
            max_duration=60,
            custom_data={"scenario": name},
            external_id=f"ext-{name}",
            calls_configuration_id=self.config_id,
        )
        call = await self.client("create_call", request)
        assert call.state.value == "CALLING"
        assert call.to == NUMBERS[name][0]
        return call.id

    async def sequence(self, call_id: str, last: str) -> list[dict[str, Any]]:
        """Every event of the call up to and including its ``last`` one."""
        await self.recorder.wait_for(types=[last], call_id=call_id, timeout=15)
        return [e for e in self.recorder.events(call_id=call_id)]


@pytest.fixture
async def world(served_gateway):
    config = Configuration(host=served_gateway.base_url, api_key=served_gateway.api_key)
    headers = {"Authorization": f"App {served_gateway.api_key}"}
    async with (
        WebhookRecorder() as recorder,
        httpx.AsyncClient(base_url=served_gateway.base_url, headers=headers) as http,
    ):
        with ApiClient(config) as api_client:
            calls = CallsApi(api_client)
            created = await asyncio.to_thread(
                calls.create_calls_configuration,
                CallsConfigurationCreateRequest(id="e2e-config", name="End to end"),
            )
            assert (created.id, created.name) == ("e2e-config", "End to end")
            # The configuration came from the official client; the rest is the gateway's own.
            phones = {number: (kind, options) for number, kind, options in NUMBERS.values()}
            await prepare_app(
                http,
                recorder.url,
                created.id,
                numbers=[DID],
                create_configuration=False,
                simulated=phones,
            )
            yield World(calls, http, recorder, created.id)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def check_envelope(event: dict[str, Any], call_id: str, config_id: str) -> None:
    assert event["callId"] == call_id
    assert event["callsConfigurationId"] == config_id
    assert event["timestamp"].endswith("+0000") and len(event["timestamp"]) == 28


def final_log(events: list[dict[str, Any]]) -> dict[str, Any]:
    return events[-1]["properties"]["callLog"]


async def test_outbound_answered_and_hung_up_by_api(world: World):
    call_id = await world.dial("answers")
    await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id, timeout=10)
    hung_up = await world.client("hangup_call", call_id, CallsHangupRequest())
    assert hung_up.state.value == "FINISHED"
    events = await world.sequence(call_id, "CALL_FINISHED")
    assert types(events) == ["CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_FINISHED"]
    for event in events:
        check_envelope(event, call_id, world.config_id)
    started = events[0]["properties"]["call"]
    assert started == {
        "id": call_id,
        "endpoint": {"type": "PHONE", "phoneNumber": NUMBERS["answers"][0]},
        "from": "441134960999",
        "to": NUMBERS["answers"][0],
        "direction": "OUTBOUND",
        "state": "CALLING",
        "media": {
            "audio": {"muted": False, "userMuted": False, "deaf": False},
            "video": {"camera": False, "screenShare": False, "blind": False},
        },
        "startTime": started["startTime"],
        "callsConfigurationId": world.config_id,
        "customData": {"scenario": "answers"},
        "externalId": "ext-answers",
    }
    assert events[2]["properties"]["call"]["state"] == "ESTABLISHED"
    assert "answerTime" in events[2]["properties"]["call"]
    log = final_log(events)
    assert log["state"] == "FINISHED"
    assert log["errorCode"] == {
        "id": 10000,
        "name": "NORMAL_HANGUP",
        "description": "The call has ended with hangup initiated by caller, callee or API",
    }
    assert log["hangupSource"] == "API"
    assert log["callsConfigurationIds"] == [world.config_id]
    assert log["externalId"] == "ext-answers"
    history = await world.client("get_call_history", call_id)
    assert history.state.value == "FINISHED" and history.hangup_source.value == "API"
    assert history.error_code.name == "NORMAL_HANGUP"


async def test_outbound_hung_up_by_callee(world: World):
    call_id = await world.dial("hangs-up")
    events = await world.sequence(call_id, "CALL_FINISHED")
    assert types(events) == ["CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_FINISHED"]
    log = final_log(events)
    assert (log["state"], log["hangupSource"], log["errorCode"]["name"]) == (
        "FINISHED",
        "ENDPOINT",
        "NORMAL_HANGUP",
    )


async def test_outbound_busy(world: World):
    call_id = await world.dial("busy")
    events = await world.sequence(call_id, "CALL_FAILED")
    assert types(events) == ["CALL_STARTED", "CALL_FAILED"]
    log = final_log(events)
    assert (log["state"], log["errorCode"]["name"], log["errorCode"]["id"]) == (
        "BUSY",
        "BUSY",
        10003,
    )
    assert log["hangupSource"] == "ENDPOINT" and log["duration"] == 0
    assert "answerTime" not in log


async def test_outbound_no_answer_after_connect_timeout(world: World):
    call_id = await world.dial("silent", connect_timeout=1)
    events = await world.sequence(call_id, "CALL_FAILED")
    assert types(events) == ["CALL_STARTED", "CALL_RINGING", "CALL_FAILED"]
    log = final_log(events)
    assert (log["state"], log["errorCode"]["name"], log["hangupSource"]) == (
        "NO_ANSWER",
        "NO_ANSWER",
        "PLATFORM",
    )
    assert log["ringDuration"] == 1


async def test_outbound_failed(world: World):
    call_id = await world.dial("broken")
    events = await world.sequence(call_id, "CALL_FAILED")
    assert types(events) == ["CALL_STARTED", "CALL_FAILED"]
    log = final_log(events)
    assert (log["state"], log["errorCode"]["name"]) == ("FAILED", "SERVICE_UNAVAILABLE")


async def test_outbound_early_media_then_answer(world: World):
    call_id = await world.dial("announces")
    await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id, timeout=10)
    await world.client("hangup_call", call_id, CallsHangupRequest())
    events = await world.sequence(call_id, "CALL_FINISHED")
    assert types(events) == [
        "CALL_STARTED",
        "CALL_PRE_ESTABLISHED",
        "CALL_ESTABLISHED",
        "CALL_FINISHED",
    ]
    assert events[1]["properties"]["call"]["state"] == "PRE_ESTABLISHED"


async def place_inbound(world: World) -> str:
    response = await world.http.post("/pstn/1/calls", json={"from": CALLER, "to": DID})
    assert response.status_code == 201, response.text
    return response.json()["callId"]


async def test_inbound_received_answered_and_hung_up(world: World):
    call_id = await place_inbound(world)
    received = (await world.recorder.wait_for(types=["CALL_RECEIVED"], call_id=call_id))[0]
    call = received["properties"]["call"]
    assert (call["direction"], call["state"], call["from"], call["to"]) == (
        "INBOUND",
        "RINGING",
        CALLER,
        DID,
    )
    assert call["endpoint"] == {"type": "PHONE", "phoneNumber": CALLER}
    answered = await world.client(
        "answer_call", call_id, CallsAnswerRequest(custom_data={"a": "b"})
    )
    assert answered.status.value == "PENDING"
    fetched = await world.client("get_call", call_id)
    assert fetched.state.value == "ESTABLISHED" and fetched.custom_data == {"a": "b"}
    await world.client("hangup_call", call_id, CallsHangupRequest())
    events = await world.sequence(call_id, "CALL_FINISHED")
    assert types(events) == ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED"]
    log = final_log(events)
    assert (log["direction"], log["hangupSource"], log["customData"]) == (
        "INBOUND",
        "API",
        {"a": "b"},
    )


async def test_inbound_rejected(world: World):
    call_id = await place_inbound(world)
    await world.recorder.wait_for(types=["CALL_RECEIVED"], call_id=call_id)
    with pytest.raises(ApiException) as wrong:
        await world.client("hangup_call", call_id, CallsHangupRequest(error_code="NORMAL_HANGUP"))
    assert wrong.value.status == 400
    rejected = await world.client("hangup_call", call_id, CallsHangupRequest(error_code="REJECTED"))
    assert rejected.state.value == "FAILED"
    events = await world.sequence(call_id, "CALL_FAILED")
    assert types(events) == ["CALL_RECEIVED", "CALL_FAILED"]
    log = final_log(events)
    assert (log["state"], log["errorCode"]["name"], log["hangupSource"]) == (
        "FAILED",
        "REJECTED",
        "API",
    )
    phone = (await world.http.get(f"/pstn/1/calls/{call_id}")).json()
    assert phone["endCause"] == "REJECTED"


async def test_lists_filters_and_errors(world: World):
    answered = await world.dial("answers")
    busy = await world.dial("busy")
    await world.recorder.wait_for(types=["CALL_FAILED"], call_id=busy, timeout=10)
    page = await world.client("get_calls_history", None, world.config_id)
    assert busy in [log.call_id for log in page.results]
    assert answered not in [log.call_id for log in page.results]
    busy_only = await world.http.get(
        "/calls/1/calls", params={"status": "BUSY", "callsConfigurationId": world.config_id}
    )
    assert [c["id"] for c in busy_only.json()["results"]] == [busy]
    paged = (await world.http.get("/calls/1/calls", params={"size": 1, "page": 1})).json()
    assert paged["paging"] == {"page": 1, "size": 1, "totalPages": 2, "totalResults": 2}
    with pytest.raises(ApiException) as missing:
        await world.client("get_call", "no-such-call")
    assert missing.value.status == 404
    await world.client("hangup_call", answered, CallsHangupRequest())
