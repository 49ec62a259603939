"""Dialogs through the in-process API with simulated phones: the exact order of CALL_* and
DIALOG_* events across parent, child and dialog, propagation both ways, the API's answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import Gateway
from gateway.core.dialogs import Dialog, DialogState
from gateway.core.leg import Leg
from gateway.store.dialogs import SqlDialogStore
from gateway.testing.app import CALL_EVENTS, prepare_app
from gateway.testing.webhook_recorder import WebhookRecorder
from gateway.timeutil import format_time, parse_time
from tests.conftest import API_KEY, fast_settings
from tests.contract import OpenApiContract, voice

DIALOGS = "/calls/1/dialogs"
CONFIG = "dialog-app"
DID = "441134960100"
CALLER = "15557654321"
ANSWERS = "15550100001"
ANNOUNCES = "15550100002"
ANNOUNCES_LONG = "15550100003"
BUSY = "15550100004"
SILENT = "15550100005"
NUMBERS: dict[str, tuple[str, dict[str, int]]] = {
    ANSWERS: ("answer", {"answerAfterMs": 50}),
    ANNOUNCES: ("early-media", {"earlyMediaMs": 150}),
    ANNOUNCES_LONG: ("early-media", {"earlyMediaMs": 30000}),
    BUSY: ("busy", {"delayMs": 30}),
    SILENT: ("no-answer", {}),
}
DIALOG_EVENTS = ["DIALOG_CREATED", "DIALOG_ESTABLISHED", "DIALOG_FINISHED", "DIALOG_FAILED"]
EVENT_WEBHOOK = "calls-event-webhook"


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["requestError"]["serviceException"]


class App:
    """A voice app on the gateway: its API client and the webhook that gets its events."""

    def __init__(self, api: httpx.AsyncClient, recorder: WebhookRecorder) -> None:
        self.api = api
        self.recorder = recorder

    async def inbound(self) -> str:
        """A simulated caller dials the app's number; the call is left RINGING."""
        placed = await self.api.post("/pstn/1/calls", json={"from": CALLER, "to": DID})
        assert placed.status_code == 201, placed.text
        call_id = placed.json()["callId"]
        await self.recorder.wait_for(types=["CALL_RECEIVED"], call_id=call_id)
        return call_id

    async def outbound(
        self, number: str = ANSWERS, parent: str | None = None, until: str | None = None
    ) -> str:
        """An outbound call (a child when ``parent`` is given), once its ``until`` event came:
        CALL_ESTABLISHED unless told; "" for as soon as it is placed."""
        body = {
            "endpoint": {"type": "PHONE", "phoneNumber": number},
            "from": "441134960999",
            "callsConfigurationId": CONFIG,
            "parentCallId": parent,
        }
        created = await self.api.post("/calls/1/calls", json=body)
        assert created.status_code == 201, created.text
        call_id = created.json()["id"]
        until = "CALL_ESTABLISHED" if until is None else until
        if until:
            await self.recorder.wait_for(types=[until], call_id=call_id)
        return call_id

    async def dialog(self, parent: str, number: str, **extra: Any) -> dict[str, Any]:
        body = {
            "parentCallId": parent,
            "childCallRequest": {
                "endpoint": {"type": "PHONE", "phoneNumber": number},
                "from": "441134960999",
            },
            **extra,
        }
        created = await self.api.post(DIALOGS, json=body)
        assert created.status_code == 201, created.text
        return created.json()

    async def wait(self, dialog_id: str, event_type: str) -> dict[str, Any]:
        found = await self.recorder.wait_for(
            types=[event_type], predicate=lambda e: e.get("dialogId") == dialog_id
        )
        return found[-1]

    def flow(self, parent: str, child: str | None = None, *, since: int = 0) -> list[str]:
        """Every event of the two calls and of dialogs, in arrival order: ``TYPE role``."""
        roles = {parent: "parent", child: "child"}
        steps = []
        for event in self.recorder.events()[since:]:
            if "callId" not in event:
                steps.append(event["type"])
            elif event["callId"] in roles:
                steps.append(f"{event['type']} {roles[event['callId']]}")
        return steps

    def event(self, event_type: str, call_id: str | None = None) -> dict[str, Any]:
        return next(
            e
            for e in self.recorder.events()
            if e["type"] == event_type and (call_id is None or e.get("callId") == call_id)
        )


@pytest.fixture
async def app(api: httpx.AsyncClient) -> AsyncIterator[App]:
    async with WebhookRecorder() as recorder:
        events = [*CALL_EVENTS, *DIALOG_EVENTS]
        await prepare_app(
            api, recorder.url, CONFIG, numbers=[DID], events=events, simulated=NUMBERS
        )
        yield App(api, recorder)


async def test_inbound_parent_bridged_to_an_answering_number(app: App):
    parent = await app.inbound()
    created = await app.dialog(parent, ANSWERS)
    dialog_id, child = created["id"], created["childCall"]["id"]
    assert created["state"] == "CREATED"
    assert created["callsConfigurationId"] == CONFIG
    assert created["parentCall"]["id"] == parent and created["parentCall"]["state"] == "RINGING"
    assert created["childCall"]["parentCallId"] == parent
    assert created["childCall"]["dialogId"] == dialog_id

    established = await app.wait(dialog_id, "DIALOG_ESTABLISHED")
    assert app.flow(parent, child) == [
        "CALL_RECEIVED parent",
        "DIALOG_CREATED",
        "CALL_STARTED child",
        "CALL_RINGING child",
        "CALL_ESTABLISHED child",
        "CALL_ESTABLISHED parent",
        "DIALOG_ESTABLISHED",
    ]
    assert "callId" not in established
    assert established["callsConfigurationId"] == CONFIG
    dialog = established["properties"]["dialog"]
    assert dialog["state"] == "ESTABLISHED" and dialog["establishTime"]
    assert dialog["parentCall"]["state"] == dialog["childCall"]["state"] == "ESTABLISHED"
    assert app.event("CALL_STARTED", child)["dialogId"] == dialog_id
    assert app.event("CALL_ESTABLISHED", parent)["dialogId"] == dialog_id
    assert (await app.api.get(f"{DIALOGS}/{dialog_id}")).json()["state"] == "ESTABLISHED"

    since = len(app.recorder.events())
    hung_up = await app.api.post(f"/pstn/1/calls/{child}/hangup")
    assert hung_up.status_code == 200, hung_up.text
    finished = await app.wait(dialog_id, "DIALOG_FINISHED")
    assert app.flow(parent, child, since=since) == [
        "CALL_FINISHED child",
        "CALL_FINISHED parent",
        "DIALOG_FINISHED",
    ]
    assert finished["properties"]["hangupSource"] == "CHILD_ENDPOINT"
    assert finished["properties"]["errorCode"]["name"] == "NORMAL_HANGUP"
    assert finished["properties"]["dialog"]["state"] == "FINISHED"
    parent_log = app.event("CALL_FINISHED", parent)["properties"]["callLog"]
    assert (parent_log["hangupSource"], parent_log["dialogId"]) == ("PLATFORM", dialog_id)
    history = (await app.api.get(f"{DIALOGS}/{dialog_id}/history")).json()
    assert history["state"] == "FINISHED" and history["hangupSource"] == "CHILD_ENDPOINT"
    assert (history["parentCallId"], history["childCallId"]) == (parent, child)


async def test_early_media_reaches_the_caller_before_the_answer(app: App, gateway: Gateway):
    bridged: list[tuple[str, str, str, str]] = []

    def on_bridge(parent: Leg, child: Leg) -> None:
        bridged.append((parent.id, parent.state.value, child.id, child.state.value))

    gateway.dialogs.on_bridge = on_bridge
    parent = await app.inbound()
    created = await app.dialog(parent, ANNOUNCES)
    child = created["childCall"]["id"]
    await app.wait(created["id"], "DIALOG_ESTABLISHED")
    assert app.flow(parent, child) == [
        "CALL_RECEIVED parent",
        "DIALOG_CREATED",
        "CALL_STARTED child",
        "CALL_PRE_ESTABLISHED child",
        "CALL_PRE_ESTABLISHED parent",
        "CALL_ESTABLISHED child",
        "CALL_ESTABLISHED parent",
        "DIALOG_ESTABLISHED",
    ]
    # The media seam: bridged once both legs carry (early) media, again once both answered.
    assert bridged[0] == (parent, "PRE_ESTABLISHED", child, "PRE_ESTABLISHED")
    assert bridged[-1] == (parent, "ESTABLISHED", child, "ESTABLISHED")


async def test_hangup_during_early_media_fails_the_dialog(app: App):
    parent = await app.inbound()
    created = await app.dialog(parent, ANNOUNCES_LONG)
    dialog_id, child = created["id"], created["childCall"]["id"]
    await app.recorder.wait_for(types=["CALL_PRE_ESTABLISHED"], call_id=parent)
    assert (await app.api.get(f"{DIALOGS}/{dialog_id}")).json()["state"] == "PRE_ESTABLISHED"

    hung_up = await app.api.post(f"{DIALOGS}/{dialog_id}/hangup")
    assert hung_up.status_code == 200, hung_up.text
    assert hung_up.json()["state"] == "FAILED"
    failed = await app.wait(dialog_id, "DIALOG_FAILED")
    assert app.flow(parent, child)[-3:] == [
        "CALL_FAILED child",
        "CALL_FAILED parent",
        "DIALOG_FAILED",
    ]
    assert failed["properties"]["hangupSource"] == "API"
    assert failed["properties"]["errorCode"]["name"] == "CANCELLED"
    for call_id in (parent, child):
        log = app.event("CALL_FAILED", call_id)["properties"]["callLog"]
        assert (log["state"], log["hangupSource"]) == ("CANCELLED", "API")


async def test_busy_child_is_propagated_to_the_caller(app: App):
    parent = await app.inbound()
    created = await app.dialog(parent, BUSY)
    dialog_id, child = created["id"], created["childCall"]["id"]
    failed = await app.wait(dialog_id, "DIALOG_FAILED")
    assert app.flow(parent, child) == [
        "CALL_RECEIVED parent",
        "DIALOG_CREATED",
        "CALL_STARTED child",
        "CALL_FAILED child",
        "CALL_FAILED parent",
        "DIALOG_FAILED",
    ]
    parent_log = app.event("CALL_FAILED", parent)["properties"]["callLog"]
    assert (parent_log["state"], parent_log["errorCode"]["name"]) == ("BUSY", "BUSY")
    assert failed["properties"]["errorCode"]["name"] == "BUSY"
    assert failed["properties"]["hangupSource"] == "CHILD_ENDPOINT"
    assert "establishTime" not in failed["properties"]["dialog"]


async def test_without_child_call_hangup_the_caller_waits_for_another_try(app: App):
    parent = await app.inbound()
    first = await app.dialog(parent, BUSY, propagationOptions={"childCallHangup": False})
    await app.wait(first["id"], "DIALOG_FAILED")
    assert app.flow(parent, first["childCall"]["id"]) == [
        "CALL_RECEIVED parent",
        "DIALOG_CREATED",
        "CALL_STARTED child",
        "CALL_FAILED child",
        "DIALOG_FAILED",
    ]
    assert (await app.api.get(f"/calls/1/calls/{parent}")).json()["state"] == "RINGING"

    second = await app.dialog(parent, ANSWERS, propagationOptions={"childCallHangup": False})
    await app.wait(second["id"], "DIALOG_ESTABLISHED")
    assert (await app.api.get(f"/calls/1/calls/{parent}")).json()["dialogId"] == second["id"]
    # Without childCallHangup the parent outlives the child: the dialog ends with the child.
    since = len(app.recorder.events())
    await app.api.post(f"/pstn/1/calls/{second['childCall']['id']}/hangup")
    await app.wait(second["id"], "DIALOG_FINISHED")
    assert app.flow(parent, second["childCall"]["id"], since=since) == [
        "CALL_FINISHED child",
        "DIALOG_FINISHED",
    ]
    assert (await app.api.get(f"/calls/1/calls/{parent}")).json()["state"] == "ESTABLISHED"


async def test_child_ringing_and_no_answer_reach_the_caller(app: App):
    parent = await app.inbound()
    created = await app.dialog(
        parent,
        SILENT,
        childCallRequest={
            "endpoint": {"type": "PHONE", "phoneNumber": SILENT},
            "connectTimeout": 1,
        },
        propagationOptions={"childCallRinging": True},
    )
    failed = await app.wait(created["id"], "DIALOG_FAILED")
    assert app.flow(parent, created["childCall"]["id"]) == [
        "CALL_RECEIVED parent",
        "DIALOG_CREATED",
        "CALL_STARTED child",
        "CALL_RINGING child",
        "CALL_FAILED child",
        "CALL_FAILED parent",
        "DIALOG_FAILED",
    ]
    assert failed["properties"]["errorCode"]["name"] == "NO_ANSWER"
    assert failed["properties"]["hangupSource"] == "PLATFORM"  # connectTimeout ran out
    assert app.event("CALL_FAILED", parent)["properties"]["callLog"]["state"] == "NO_ANSWER"
    caller = (await app.api.get(f"/pstn/1/calls/{parent}")).json()
    assert "heard ringing" in [entry["event"] for entry in caller["log"]]


async def test_parent_hanging_up_ends_the_child(app: App):
    parent = await app.inbound()
    created = await app.dialog(parent, ANSWERS)
    dialog_id, child = created["id"], created["childCall"]["id"]
    await app.wait(dialog_id, "DIALOG_ESTABLISHED")
    since = len(app.recorder.events())
    await app.api.post(f"/pstn/1/calls/{parent}/hangup")
    finished = await app.wait(dialog_id, "DIALOG_FINISHED")
    assert app.flow(parent, child, since=since) == [
        "CALL_FINISHED parent",
        "CALL_FINISHED child",
        "DIALOG_FINISHED",
    ]
    assert finished["properties"]["hangupSource"] == "PARENT_ENDPOINT"
    assert finished["properties"]["errorCode"]["name"] == "NORMAL_HANGUP"


async def test_caller_abandoning_cancels_the_child(app: App):
    parent = await app.inbound()
    created = await app.dialog(parent, SILENT)
    dialog_id, child = created["id"], created["childCall"]["id"]
    await app.recorder.wait_for(types=["CALL_RINGING"], call_id=child)
    await app.api.post(f"/pstn/1/calls/{parent}/hangup")
    failed = await app.wait(dialog_id, "DIALOG_FAILED")
    assert app.flow(parent, child)[-3:] == [
        "CALL_FAILED parent",
        "CALL_FAILED child",
        "DIALOG_FAILED",
    ]
    assert failed["properties"]["hangupSource"] == "PARENT_ENDPOINT"
    assert failed["properties"]["errorCode"]["name"] == "CANCELLED"
    assert app.event("CALL_FAILED", child)["properties"]["callLog"]["state"] == "CANCELLED"


async def test_hangup_api_ends_both_calls(app: App):
    parent = await app.inbound()
    created = await app.dialog(parent, ANSWERS)
    dialog_id, child = created["id"], created["childCall"]["id"]
    await app.wait(dialog_id, "DIALOG_ESTABLISHED")
    since = len(app.recorder.events())
    hung_up = await app.api.post(f"{DIALOGS}/{dialog_id}/hangup")
    assert hung_up.status_code == 200, hung_up.text
    body = hung_up.json()
    assert body["state"] == "FINISHED" and body["endTime"]
    assert body["parentCall"]["state"] == body["childCall"]["state"] == "FINISHED"
    finished = await app.wait(dialog_id, "DIALOG_FINISHED")
    assert app.flow(parent, child, since=since) == [
        "CALL_FINISHED child",
        "CALL_FINISHED parent",
        "DIALOG_FINISHED",
    ]
    assert finished["properties"]["hangupSource"] == "API"
    for call_id in (parent, child):
        assert app.event("CALL_FINISHED", call_id)["properties"]["callLog"]["hangupSource"] == "API"
    again = await app.api.post(f"{DIALOGS}/{dialog_id}/hangup")
    assert again.status_code == 400 and "already ended" in error_of(again)["text"]


async def test_max_duration_ends_the_dialog_from_the_platform(app: App):
    parent = await app.inbound()
    created = await app.dialog(parent, ANSWERS, maxDuration=1)
    finished = await app.wait(created["id"], "DIALOG_FINISHED")
    assert finished["properties"]["hangupSource"] == "PLATFORM"
    assert finished["properties"]["errorCode"]["name"] == "NORMAL_HANGUP"


async def test_dialog_with_existing_calls(app: App):
    parent = await app.inbound()
    created = await app.api.post(
        "/calls/1/calls",
        json={
            "endpoint": {"type": "PHONE", "phoneNumber": ANSWERS},
            "callsConfigurationId": CONFIG,
            "parentCallId": parent,
        },
    )
    child = created.json()["id"]
    joined = await app.api.post(f"{DIALOGS}/parent-call/{parent}/child-call/{child}")
    assert joined.status_code == 201, joined.text
    dialog = joined.json()
    assert (dialog["parentCall"]["id"], dialog["childCall"]["id"]) == (parent, child)
    await app.wait(dialog["id"], "DIALOG_ESTABLISHED")
    steps = app.flow(parent, child)
    # The child may answer before or after the dialog exists; the parent is answered after both.
    tail = ["CALL_ESTABLISHED child", "CALL_ESTABLISHED parent", "DIALOG_ESTABLISHED"]
    assert [step for step in steps if step in tail] == tail
    assert steps.index("DIALOG_CREATED") < steps.index("CALL_ESTABLISHED parent")
    for call_id in (parent, child):
        assert (await app.api.get(f"/calls/1/calls/{call_id}")).json()["dialogId"] == dialog["id"]

    # Two calls answered already: the dialog is established as soon as it is created.
    outbound_parent = await app.outbound()
    outbound_child = await app.outbound(parent=outbound_parent)
    since = len(app.recorder.events())
    joined = await app.api.post(
        f"{DIALOGS}/parent-call/{outbound_parent}/child-call/{outbound_child}",
        json={"propagationOptions": {"childCallHangup": True}, "maxDuration": 600},
    )
    assert joined.status_code == 201, joined.text
    await app.wait(joined.json()["id"], "DIALOG_ESTABLISHED")
    assert app.flow(outbound_parent, outbound_child, since=since) == [
        "DIALOG_CREATED",
        "DIALOG_ESTABLISHED",
    ]


async def test_bad_requests(app: App):
    missing = await app.api.post(
        DIALOGS,
        json={"parentCallId": "nope", "childCallRequest": {"endpoint": {"type": "PHONE"}}},
    )
    assert missing.status_code == 404 and error_of(missing)["messageId"] == "NOT_FOUND"

    parent = await app.inbound()
    child_request = {"endpoint": {"type": "PHONE", "phoneNumber": SILENT}}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"parentCallId": parent}, "childCallRequest"),
        ({"parentCallId": parent, "childCallRequest": {}}, "childCallRequest.endpoint"),
        (
            {
                "parentCallId": parent,
                "childCallRequest": {
                    **child_request,
                    "machineDetection": {"enabled": True, "detectionTime": 6},
                },
            },
            "childCallRequest.machineDetection.detectionTime",
        ),
        (
            {
                "parentCallId": parent,
                "childCallRequest": child_request,
                "propagationOptions": {
                    "childCallRinging": True,
                    "ringbackGeneration": {"enabled": True},
                },
            },
            "propagationOptions.childCallRinging",
        ),
        (
            {
                "parentCallId": parent,
                "childCallRequest": child_request,
                "recording": {"recordingType": "VIDEO"},
            },
            "recording.recordingType",
        ),
        (
            {"parentCallId": parent, "childCallRequest": child_request, "maxDuration": 0},
            "maxDuration",
        ),
        (
            {"parentCallId": parent, "childCallRequest": {"endpoint": {"type": "PHONE"}}},
            "endpoint.phoneNumber",
        ),
    ]
    for body, field in cases:
        refused = await app.api.post(DIALOGS, json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert field in error_of(refused)["validationErrors"], (body, refused.text)
    assert not [e for e in app.recorder.events() if e["type"].startswith("DIALOG_")]

    first = await app.dialog(parent, SILENT)
    busy = await app.api.post(
        DIALOGS, json={"parentCallId": parent, "childCallRequest": child_request}
    )
    assert busy.status_code == 400
    assert f"already in dialog '{first['id']}'" in error_of(busy)["text"]
    # The child is in the dialog too: it cannot be the parent of another one.
    child_as_parent = await app.api.post(
        DIALOGS,
        json={"parentCallId": first["childCall"]["id"], "childCallRequest": child_request},
    )
    assert child_as_parent.status_code == 400

    await app.api.post(f"/pstn/1/calls/{parent}/hangup")
    await app.wait(first["id"], "DIALOG_FAILED")
    ended = await app.api.post(
        DIALOGS, json={"parentCallId": parent, "childCallRequest": child_request}
    )
    assert ended.status_code == 400 and "already ended" in error_of(ended)["text"]

    outbound_parent = await app.outbound()
    ringing = await app.api.post(
        DIALOGS,
        json={
            "parentCallId": outbound_parent,
            "childCallRequest": child_request,
            "propagationOptions": {"childCallRinging": True},
        },
    )
    assert ringing.status_code == 400
    assert (
        "INBOUND" in error_of(ringing)["validationErrors"]["propagationOptions.childCallRinging"][0]
    )

    stranger = await app.outbound()  # no parentCallId
    wrong = await app.api.post(f"{DIALOGS}/parent-call/{outbound_parent}/child-call/{stranger}")
    assert wrong.status_code == 400 and "parentCallId" in error_of(wrong)["text"]
    unknown_child = await app.api.post(f"{DIALOGS}/parent-call/{outbound_parent}/child-call/nope")
    assert unknown_child.status_code == 404
    for path in (f"{DIALOGS}/nope", f"{DIALOGS}/nope/history"):
        assert (await app.api.get(path)).status_code == 404
    assert (await app.api.post(f"{DIALOGS}/nope/hangup")).status_code == 404
    bad_filter = await app.api.get(DIALOGS, params={"state": "SINGING"})
    assert bad_filter.status_code == 400 and "state" in error_of(bad_filter)["validationErrors"]


async def test_lists_filters_history_and_paging(app: App):
    dialogs = []
    for _ in range(3):
        parent = await app.inbound()
        created = await app.dialog(parent, ANSWERS)
        await app.wait(created["id"], "DIALOG_ESTABLISHED")
        dialogs.append(created)
    ended = dialogs[:2]
    for dialog in ended:
        await app.api.post(f"{DIALOGS}/{dialog['id']}/hangup")
    live = dialogs[2]
    newest_first = [d["id"] for d in reversed(dialogs)]

    listed = (await app.api.get(DIALOGS, params={"size": 2})).json()
    assert [d["id"] for d in listed["results"]] == newest_first[:2]
    assert listed["paging"] == {"page": 0, "size": 2, "totalPages": 2, "totalResults": 3}
    second_page = (await app.api.get(DIALOGS, params={"size": 2, "page": 1})).json()
    assert [d["id"] for d in second_page["results"]] == newest_first[2:]

    async def ids(path: str, **params: str) -> list[str]:
        page = (await app.api.get(path, params=params)).json()
        key = "id" if path == DIALOGS else "dialogId"
        return [d[key] for d in page["results"]]

    assert await ids(DIALOGS, state="ESTABLISHED") == [live["id"]]
    assert await ids(DIALOGS, parentCallId=live["parentCall"]["id"]) == [live["id"]]
    assert await ids(DIALOGS, childCallId=ended[0]["childCall"]["id"]) == [ended[0]["id"]]
    assert await ids(DIALOGS, callsConfigurationId=CONFIG) == newest_first
    assert await ids(DIALOGS, callsConfigurationId="other") == []
    # Times go out in milliseconds and are kept finer: one millisecond on, the first is older.
    after_first = format_time(parse_time(dialogs[0]["startTime"]) + timedelta(milliseconds=1))
    assert await ids(DIALOGS, startTimeAfter=after_first or "") == newest_first[:2]

    history = (await app.api.get(f"{DIALOGS}/history")).json()
    assert [d["dialogId"] for d in history["results"]] == [d["id"] for d in reversed(ended)]
    assert all(d["state"] == "FINISHED" and d["hangupSource"] == "API" for d in history["results"])
    assert history["paging"]["totalResults"] == 2
    later = format_time(datetime.now(UTC) + timedelta(minutes=1))
    assert len(await ids(f"{DIALOGS}/history", endTimeBefore=later or "")) == 2
    assert await ids(f"{DIALOGS}/history", endTimeBefore=dialogs[0]["startTime"]) == []
    assert await ids(f"{DIALOGS}/history", state="ESTABLISHED") == []

    one = (await app.api.get(f"{DIALOGS}/{ended[0]['id']}/history")).json()
    assert one["dialogId"] == ended[0]["id"] and one["duration"] >= 0
    assert one["errorCode"]["name"] == "NORMAL_HANGUP"
    not_yet = await app.api.get(f"{DIALOGS}/{live['id']}/history")
    assert not_yet.status_code == 404 and "still ESTABLISHED" in error_of(not_yet)["text"]
    got = (await app.api.get(f"{DIALOGS}/{live['id']}")).json()
    assert got["state"] == "ESTABLISHED" and got["childCall"]["state"] == "ESTABLISHED"


async def test_responses_and_events_match_the_openapi(app: App, reference: Path):
    spec: OpenApiContract = voice(reference)

    def conforms(response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, response.text
        body = response.json()
        request = response.request
        spec.validate(request.method, request.url.path, status, body, strict=True)
        return body

    parent = await app.inbound()
    body = {
        "parentCallId": parent,
        "childCallRequest": {
            "endpoint": {"type": "PHONE", "phoneNumber": ANSWERS},
            "from": "441134960999",
            "fromDisplayName": "Desk",
            "connectTimeout": 30,
            "customData": {"scenario": "contract"},
        },
        "maxDuration": 600,
        "propagationOptions": {"childCallHangup": True, "childCallRinging": True},
    }
    dialog = conforms(await app.api.post(DIALOGS, json=body), 201)
    await app.wait(dialog["id"], "DIALOG_ESTABLISHED")
    conforms(await app.api.get(f"{DIALOGS}/{dialog['id']}"), 200)
    conforms(await app.api.get(DIALOGS), 200)
    conforms(await app.api.post(f"{DIALOGS}/{dialog['id']}/hangup"), 200)
    await app.wait(dialog["id"], "DIALOG_FINISHED")
    conforms(await app.api.get(f"{DIALOGS}/history"), 200)
    conforms(await app.api.get(f"{DIALOGS}/{dialog['id']}/history"), 200)

    busy_parent = await app.inbound()
    failed = await app.dialog(busy_parent, BUSY)
    await app.wait(failed["id"], "DIALOG_FAILED")

    outbound_parent = await app.outbound()
    outbound_child = await app.outbound(parent=outbound_parent)
    path = f"{DIALOGS}/parent-call/{outbound_parent}/child-call/{outbound_child}"
    conforms(await app.api.post(path, json={"maxDuration": 60}), 201)

    conforms(await app.api.get(f"{DIALOGS}/nope"), 404)
    conforms(await app.api.get(f"{DIALOGS}/nope/history"), 404)
    conforms(await app.api.post(f"{DIALOGS}/nope/hangup"), 404)
    conforms(await app.api.post(DIALOGS, json={"parentCallId": parent}), 400)
    conforms(await app.api.get(DIALOGS, params={"state": "SINGING"}), 400)

    seen = set()
    for event in app.recorder.events():
        spec.validate_webhook(EVENT_WEBHOOK, event, strict=True)
        seen.add(event["type"])
    assert set(DIALOG_EVENTS) <= seen


async def test_dialogs_left_open_are_ended_on_recovery(gateway: Gateway):
    store = SqlDialogStore(gateway.db)
    start = datetime.now(UTC)
    store.save(
        Dialog("d-up", CONFIG, "p1", "c1", start, DialogState.ESTABLISHED, establish_time=start)
    )
    store.save(Dialog("d-created", CONFIG, "p2", "c2", start))

    assert gateway.dialogs.recover() == 2
    finished, failed = store.get("d-up"), store.get("d-created")
    assert finished is not None and failed is not None
    assert (finished.state, finished.hangup_source) == (DialogState.FINISHED, "PLATFORM")
    assert (failed.state, failed.hangup_source) == (DialogState.FAILED, "PLATFORM")
    assert failed.error_code is not None and failed.error_code.name == "SERVICE_UNAVAILABLE"
    assert gateway.dialogs.recover() == 0


async def test_stopping_ends_open_dialogs_and_a_restart_keeps_their_history(tmp_path: Path):
    settings = fast_settings(tmp_path / "data")
    gateway = Gateway.build(settings)
    await gateway.start()
    transport = httpx.ASGITransport(app=gateway.api)
    headers = {"Authorization": f"App {API_KEY}"}
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://gw", headers=headers) as api,
        WebhookRecorder() as recorder,
    ):
        await prepare_app(api, recorder.url, CONFIG, numbers=[DID], events=DIALOG_EVENTS)
        app = App(api, recorder)
        placed = await api.post("/pstn/1/calls", json={"from": CALLER, "to": DID})
        created = await app.dialog(placed.json()["callId"], SILENT)
        await gateway.stop()

    again = Gateway.build(settings)
    await again.start()
    try:
        dialog = again.dialogs.get(created["id"])
        assert (dialog.state, dialog.hangup_source) == (DialogState.FAILED, "PLATFORM")
        parent, child = again.dialogs.legs(dialog)
        assert parent is not None and parent.state.is_final
        assert child is not None and child.state.is_final
        assert again.dialogs.recover() == 0
    finally:
        await again.stop()
