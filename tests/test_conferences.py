"""Conferences and connect through the in-process API with simulated phones: the order of
CONFERENCE_*, PARTICIPANT_* and the participants' CALL_* events, the API's answers and errors.

Events of different ordering keys (a conference, each call) are delivered side by side, so
the order across them is checked in publish order (``X-Gateway-Event-Id``), the order the
gateway guarantees; within one key, arrival order is that order too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import Gateway
from gateway.core.conferences import (
    Conference,
    ConferenceQuery,
    Participant,
    ParticipantState,
)
from gateway.store.conferences import SqlConferenceStore
from gateway.testing.app import CALL_EVENTS, prepare_app
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.contract import OpenApiContract, voice
from tests.test_dialogs import (
    ANNOUNCES,
    ANSWERS,
    BUSY,
    CONFIG,
    DID,
    EVENT_WEBHOOK,
    NUMBERS,
    SILENT,
    App,
    error_of,
)

CONFERENCES = "/calls/1/conferences"
CONFERENCE_EVENTS = [
    "CONFERENCE_CREATED", "CONFERENCE_FINISHED", "PARTICIPANT_JOINING", "PARTICIPANT_JOINED",
    "PARTICIPANT_JOIN_FAILED", "PARTICIPANT_REMOVED", "PARTICIPANT_MEDIA_CHANGED",
    "PARTICIPANT_STARTED_TALKING", "PARTICIPANT_STOPPED_TALKING",
]  # fmt: skip
FROM = "441134960999"


def phone(number: str) -> dict[str, Any]:
    return {"endpoint": {"type": "PHONE", "phoneNumber": number}, "from": FROM}


class ConferenceApp(App):
    """The dialog tests' voice app, subscribed to conference events too."""

    async def conference(self, **body: Any) -> dict[str, Any]:
        created = await self.api.post(CONFERENCES, json={"callsConfigurationId": CONFIG, **body})
        assert created.status_code == 201, created.text
        return created.json()

    async def add(self, conference_id: str, call_id: str) -> dict[str, Any]:
        added = await self.api.put(f"{CONFERENCES}/{conference_id}/call/{call_id}")
        assert added.status_code == 200, added.text
        return added.json()

    async def wait_conf(
        self, conference_id: str, event_type: str, call_id: str | None = None
    ) -> dict[str, Any]:
        found = await self.recorder.wait_for(
            types=[event_type],
            predicate=lambda e: (
                e.get("conferenceId") == conference_id
                and (call_id is None or e.get("callId") == call_id)
            ),
        )
        return found[-1]

    def published(self) -> list[dict[str, Any]]:
        """Accepted events in the order the gateway published them."""
        requests = [r for r in self.recorder.requests if r.accepted]
        requests.sort(key=lambda r: int(r.headers["x-gateway-event-id"]))
        return [r.event for r in requests]

    def steps(self, roles: dict[str, str]) -> list[str]:
        """Conference events and the named calls' events in publish order: ``TYPE role``
        (talk events left out: phones with announcements talk whenever they are heard)."""
        steps = []
        for event in self.published():
            role = roles.get(event.get("callId", ""), "")
            if event["type"].endswith("_TALKING"):
                continue
            if event["type"].startswith(("CONFERENCE_", "PARTICIPANT_")) or role:
                steps.append(f"{event['type']} {role}".strip())
        return steps


@pytest.fixture
async def app(api: httpx.AsyncClient) -> AsyncIterator[ConferenceApp]:
    async with WebhookRecorder() as recorder:
        events = [*CALL_EVENTS, *CONFERENCE_EVENTS]
        await prepare_app(
            api, recorder.url, CONFIG, numbers=[DID], events=events, simulated=NUMBERS
        )
        yield ConferenceApp(api, recorder)


async def test_existing_calls_join_leave_and_the_conference_ends(app: ConferenceApp):
    a, b = await app.outbound(), await app.outbound()
    created = await app.conference(name="standup", maxDuration=600)
    conference_id = created["id"]
    assert created == {
        "id": conference_id,
        "name": "standup",
        "participants": [],
        "callsConfigurationId": CONFIG,
    }
    await app.add(conference_id, a)
    added = await app.add(conference_id, b)
    assert [(p["callId"], p["state"]) for p in added["participants"]] == [
        (a, "JOINED"),
        (b, "JOINED"),
    ]
    await app.wait_conf(conference_id, "PARTICIPANT_JOINED", b)
    call = (await app.api.get(f"/calls/1/calls/{a}")).json()
    assert call["conferenceId"] == conference_id
    listed = (await app.api.get(CONFERENCES, params={"callId": b})).json()
    assert [c["id"] for c in listed["results"]] == [conference_id]
    assert (await app.api.get(CONFERENCES, params={"name": "other"})).json()["results"] == []

    removed = await app.api.delete(f"{CONFERENCES}/{conference_id}/call/{a}")
    assert removed.status_code == 200 and removed.json() == {"status": "PENDING"}
    event = await app.wait_conf(conference_id, "PARTICIPANT_REMOVED", a)
    assert event["properties"]["participant"]["state"] == "LEFT"
    assert "API request" in event["properties"]["reason"]
    still = (await app.api.get(f"/calls/1/calls/{a}")).json()
    assert still["state"] == "ESTABLISHED" and "conferenceId" not in still  # left, still up
    got = (await app.api.get(f"{CONFERENCES}/{conference_id}")).json()
    assert [p["callId"] for p in got["participants"]] == [b]

    await app.api.delete(f"{CONFERENCES}/{conference_id}/call/{b}")
    finished = await app.wait_conf(conference_id, "CONFERENCE_FINISHED")
    assert finished["properties"]["errorCode"]["name"] == "NORMAL_HANGUP"
    steps = app.steps({a: "a", b: "b"})
    assert steps[steps.index("CONFERENCE_CREATED") :] == [
        "CONFERENCE_CREATED",
        "PARTICIPANT_JOINING a",
        "PARTICIPANT_JOINED a",
        "PARTICIPANT_JOINING b",
        "PARTICIPANT_JOINED b",
        "PARTICIPANT_REMOVED a",
        "PARTICIPANT_REMOVED b",
        "CONFERENCE_FINISHED",
    ]

    again = await app.api.put(f"{CONFERENCES}/{conference_id}/call/{a}")
    assert again.status_code == 400 and "never reopened" in error_of(again)["text"]
    assert (await app.api.get(CONFERENCES, params={"name": "standup"})).json()["results"] == []
    history = (await app.api.get(f"{CONFERENCES}/{conference_id}/history")).json()
    assert history["conferenceId"] == conference_id and history["errorCode"]["id"] == 10000
    assert [s["callId"] for s in history["sessions"]] == [a, b]
    assert all(s["joinTime"] and s["leaveTime"] for s in history["sessions"])
    listed = (await app.api.get(f"{CONFERENCES}/history", params={"callId": a})).json()
    assert [h["conferenceId"] for h in listed["results"]] == [conference_id]
    renewed = await app.conference(name="standup")
    assert renewed["id"] != conference_id
    for call_id in (a, b):
        await app.api.post(f"/calls/1/calls/{call_id}/hangup", json={})
        log = await app.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
        assert log[0]["properties"]["callLog"]["conferenceIds"] == [conference_id]


async def test_connect_answers_an_inbound_call_and_hangup_ends_all(app: ConferenceApp):
    out, inbound = await app.outbound(), await app.inbound()
    connected = await app.api.post(
        "/calls/1/connect",
        json={"callIds": [out, inbound], "conferenceRequest": {"name": "pair"}},
    )
    assert connected.status_code == 200, connected.text
    conference = connected.json()
    assert conference["name"] == "pair" and conference["callsConfigurationId"] == CONFIG
    await app.wait_conf(conference["id"], "PARTICIPANT_JOINED", inbound)
    roles = {out: "out", inbound: "in"}
    assert app.steps(roles)[-7:] == [
        "CALL_RECEIVED in",
        "CONFERENCE_CREATED",
        "PARTICIPANT_JOINING out",
        "PARTICIPANT_JOINED out",
        "CALL_ESTABLISHED in",  # the gateway answered it for the app
        "PARTICIPANT_JOINING in",
        "PARTICIPANT_JOINED in",
    ]
    hung_up = await app.api.post(f"{CONFERENCES}/{conference['id']}/hangup")
    assert hung_up.status_code == 200 and hung_up.json()["participants"] == []
    await app.wait_conf(conference["id"], "CONFERENCE_FINISHED")
    assert app.steps(roles)[-5:] == [
        "CALL_FINISHED out",
        "PARTICIPANT_REMOVED out",
        "CALL_FINISHED in",
        "PARTICIPANT_REMOVED in",
        "CONFERENCE_FINISHED",
    ]
    log = app.event("CALL_FINISHED", inbound)["properties"]["callLog"]
    assert log["hangupSource"] == "API" and log["conferenceIds"] == [conference["id"]]


@pytest.mark.parametrize("early", [False, True])
async def test_connect_with_a_new_call(app: ConferenceApp, early: bool):
    existing = await app.outbound()
    body = {"callRequest": phone(ANNOUNCES), "connectOnEarlyMedia": early}
    answer = await app.api.post(f"/calls/1/calls/{existing}/connect", json=body)
    assert answer.status_code == 200, answer.text
    conference, call = answer.json()["conference"], answer.json()["call"]
    assert call["state"] == "CALLING" and call["conferenceId"] == conference["id"]
    assert [p["state"] for p in conference["participants"]] == ["JOINED", "JOINING"]
    new = call["id"]
    await app.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=new)
    await app.wait_conf(conference["id"], "PARTICIPANT_JOINED", new)
    joined = ["PARTICIPANT_JOINING new", "PARTICIPANT_JOINED new"]
    steps = app.steps({existing: "old", new: "new"})
    assert steps[steps.index("CONFERENCE_CREATED") :] == [
        "CONFERENCE_CREATED",
        "PARTICIPANT_JOINING old",
        "PARTICIPANT_JOINED old",
        "CALL_STARTED new",
        "CALL_PRE_ESTABLISHED new",
        *(joined if early else []),
        "CALL_ESTABLISHED new",
        *([] if early else joined),
    ]
    await app.api.post(f"{CONFERENCES}/{conference['id']}/hangup")
    await app.wait_conf(conference["id"], "CONFERENCE_FINISHED")


async def test_a_new_call_that_fails_does_not_join(app: ConferenceApp):
    existing = await app.outbound()
    answer = await app.api.post(
        f"/calls/1/calls/{existing}/connect", json={"callRequest": phone(BUSY)}
    )
    conference_id, busy = answer.json()["conference"]["id"], answer.json()["call"]["id"]
    failed = await app.wait_conf(conference_id, "PARTICIPANT_JOIN_FAILED", busy)
    assert "BUSY" in failed["properties"]["reason"]
    assert app.steps({busy: "new"})[-2:] == ["CALL_FAILED new", "PARTICIPANT_JOIN_FAILED new"]
    got = (await app.api.get(f"{CONFERENCES}/{conference_id}")).json()
    assert [p["callId"] for p in got["participants"]] == [existing]  # it goes on

    hung_up = await app.api.post(f"/pstn/1/calls/{existing}/hangup")  # the far end hangs up
    assert hung_up.status_code == 200, hung_up.text
    removed = await app.wait_conf(conference_id, "PARTICIPANT_REMOVED", existing)
    assert "NORMAL_HANGUP" in removed["properties"]["reason"]
    await app.wait_conf(conference_id, "CONFERENCE_FINISHED")


async def test_add_new_call_mute_and_deaf(app: ConferenceApp):
    conference_id = (await app.conference())["id"]
    answer = await app.api.post(
        f"{CONFERENCES}/{conference_id}/call", json={"callRequest": phone(ANSWERS)}
    )
    assert answer.status_code == 200, answer.text
    new = answer.json()["call"]["id"]
    existing = await app.outbound()
    await app.add(conference_id, existing)
    await app.wait_conf(conference_id, "PARTICIPANT_JOINED", new)

    muted = await app.api.patch(f"{CONFERENCES}/{conference_id}/call/{new}", json={"muted": True})
    assert muted.status_code == 200 and muted.json() == {"status": "PENDING"}
    event = await app.wait_conf(conference_id, "PARTICIPANT_MEDIA_CHANGED", new)
    assert event["properties"]["audio"] == {"muted": True, "userMuted": False, "deaf": False}
    everyone = await app.api.patch(f"{CONFERENCES}/{conference_id}", json={"deaf": True})
    assert everyone.status_code == 200
    await app.recorder.wait_for(
        count=3, types=["PARTICIPANT_MEDIA_CHANGED"],
        predicate=lambda e: e.get("conferenceId") == conference_id,
    )  # fmt: skip
    got = (await app.api.get(f"{CONFERENCES}/{conference_id}")).json()
    audio = {p["callId"]: p["media"]["audio"] for p in got["participants"]}
    assert audio[new] == {"muted": True, "userMuted": False, "deaf": True}
    assert audio[existing] == {"muted": False, "userMuted": False, "deaf": True}
    await app.api.post(f"{CONFERENCES}/{conference_id}/hangup")


async def test_at_most_fifteen_participants(app: ConferenceApp):
    conference_id = (await app.conference())["id"]
    path = f"{CONFERENCES}/{conference_id}/call"
    for _ in range(15):
        added = await app.api.post(path, json={"callRequest": phone(SILENT)})
        assert added.status_code == 200, added.text
    sixteenth = await app.api.post(path, json={"callRequest": phone(SILENT)})
    assert sixteenth.status_code == 400
    assert "at most 15 participants" in error_of(sixteenth)["text"]
    hung_up = await app.api.post(f"{CONFERENCES}/{conference_id}/hangup")
    assert hung_up.status_code == 200
    await app.wait_conf(conference_id, "CONFERENCE_FINISHED")
    failed = [e for e in app.published() if e["type"] == "PARTICIPANT_JOIN_FAILED"]
    assert len(failed) == 15  # none had answered


async def test_bad_requests(app: ConferenceApp):
    conference_id = (await app.conference())["id"]
    live = await app.outbound()
    for method, path in (
        ("GET", f"{CONFERENCES}/nope"),
        ("GET", f"{CONFERENCES}/nope/history"),
        ("PUT", f"{CONFERENCES}/nope/call/{live}"),
        ("DELETE", f"{CONFERENCES}/nope/call/{live}"),
        ("POST", f"{CONFERENCES}/nope/hangup"),
        ("PUT", f"{CONFERENCES}/{conference_id}/call/nope"),
        ("DELETE", f"{CONFERENCES}/{conference_id}/call/{live}"),  # not a participant
        ("PATCH", f"{CONFERENCES}/{conference_id}/call/{live}"),
        ("GET", f"{CONFERENCES}/{conference_id}/history"),  # still live
    ):
        kwargs = {"json": {"muted": True}} if method == "PATCH" else {}
        answer = await app.api.request(method, path, **kwargs)
        assert answer.status_code == 404, (method, path, answer.text)

    parent = await app.inbound()
    dialog = await app.dialog(parent, ANSWERS)
    in_dialog = await app.api.put(f"{CONFERENCES}/{conference_id}/call/{parent}")
    assert in_dialog.status_code == 400 and "dialog" in error_of(in_dialog)["text"]
    await app.api.post(f"/calls/1/dialogs/{dialog['id']}/hangup")
    await app.recorder.wait_for(
        predicate=lambda e: e["type"] in ("CALL_FINISHED", "CALL_FAILED"), call_id=parent
    )
    ended = await app.api.put(f"{CONFERENCES}/{conference_id}/call/{parent}")
    assert ended.status_code == 400 and "already ended" in error_of(ended)["text"]

    other = (await app.conference())["id"]
    await app.add(other, live)
    taken = await app.api.put(f"{CONFERENCES}/{conference_id}/call/{live}")
    assert taken.status_code == 400 and other in error_of(taken)["text"]
    in_conference = await app.api.post(
        "/calls/1/dialogs",
        json={"parentCallId": live, "childCallRequest": {
            "endpoint": {"type": "PHONE", "phoneNumber": ANSWERS}, "from": "441134960999"}},
    )  # fmt: skip
    assert in_conference.status_code == 400 and other in error_of(in_conference)["text"]
    twice = await app.api.post("/calls/1/connect", json={"callIds": [live, live]})
    assert twice.status_code == 400
    unknown = await app.api.post("/calls/1/connect", json={"callIds": ["nope", live]})
    assert unknown.status_code == 404

    for body in (
        {},  # callsConfigurationId is required
        {"callsConfigurationId": CONFIG, "recording": {"recordingType": "VIDEO"}},
        {"callsConfigurationId": CONFIG, "maxDuration": 0},
        {"callsConfigurationId": "no-such-config"},
    ):
        answer = await app.api.post(CONFERENCES, json=body)
        assert answer.status_code == 400, (body, answer.text)
    exclusive = await app.api.post(
        f"{CONFERENCES}/{conference_id}/call",
        json={
            "callRequest": phone(ANSWERS),
            "connectOnEarlyMedia": True,
            "ringbackGeneration": {"enabled": True},
        },
    )
    assert exclusive.status_code == 400
    role = await app.api.post(
        f"{CONFERENCES}/{conference_id}/call",
        json={"callRequest": phone(ANSWERS), "role": {"type": "MONITOR"}},
    )
    assert role.status_code == 400
    await app.api.post(f"{CONFERENCES}/{other}/hangup")


async def test_responses_and_events_match_the_openapi(app: ConferenceApp, reference: Path):
    spec: OpenApiContract = voice(reference)

    def conforms(response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, response.text
        body = response.json()
        request = response.request
        spec.validate(request.method, request.url.path, status, body, strict=True)
        return body

    a = await app.outbound()
    platform = {"applicationId": "contract-app"}
    conference = conforms(
        await app.api.post(
            CONFERENCES,
            json={"name": "contract", "callsConfigurationId": CONFIG, "platform": platform},
        ),
        201,
    )
    cid = conference["id"]
    conforms(
        await app.api.put(f"{CONFERENCES}/{cid}/call/{a}", json={"customData": {"k": "v"}}), 200
    )
    added = conforms(
        await app.api.post(f"{CONFERENCES}/{cid}/call", json={"callRequest": phone(ANSWERS)}), 200
    )
    b = added["call"]["id"]
    await app.wait_conf(cid, "PARTICIPANT_JOINED", b)
    conforms(await app.api.patch(f"{CONFERENCES}/{cid}/call/{b}", json={"muted": True}), 200)
    conforms(await app.api.patch(f"{CONFERENCES}/{cid}", json={"deaf": True}), 200)
    conforms(await app.api.get(f"{CONFERENCES}/{cid}"), 200)
    conforms(await app.api.get(CONFERENCES), 200)
    conforms(await app.api.delete(f"{CONFERENCES}/{cid}/call/{a}"), 200)
    conforms(await app.api.post(f"{CONFERENCES}/{cid}/hangup"), 200)
    await app.wait_conf(cid, "CONFERENCE_FINISHED")
    conforms(await app.api.get(f"{CONFERENCES}/history"), 200)
    conforms(await app.api.get(f"{CONFERENCES}/{cid}/history"), 200)

    c = await app.outbound()
    connected = conforms(await app.api.post("/calls/1/connect", json={"callIds": [a, c]}), 200)
    joined = conforms(
        await app.api.post(f"/calls/1/calls/{await app.outbound()}/connect",
                           json={"callRequest": phone(BUSY)}),
        200,
    )  # fmt: skip
    await app.wait_conf(joined["conference"]["id"], "PARTICIPANT_JOIN_FAILED")
    conforms(await app.api.get(f"{CONFERENCES}/nope"), 404)
    conforms(await app.api.post(CONFERENCES, json={}), 400)
    conforms(await app.api.post("/calls/1/connect", json={"callIds": [a]}), 400)
    for conference_id in (connected["id"], joined["conference"]["id"]):
        await app.api.post(f"{CONFERENCES}/{conference_id}/hangup")
        await app.wait_conf(conference_id, "CONFERENCE_FINISHED")

    seen = set()
    for event in app.recorder.events():
        spec.validate_webhook(EVENT_WEBHOOK, event, strict=True)
        seen.add(event["type"])
    expected = set(CONFERENCE_EVENTS) - {
        "PARTICIPANT_STARTED_TALKING",
        "PARTICIPANT_STOPPED_TALKING",
    }
    assert expected <= seen


async def test_conferences_left_open_are_finished_on_recovery(gateway: Gateway):
    store = SqlConferenceStore(gateway.db)
    start = datetime.now(UTC)
    joined = Participant("c1", {"type": "PHONE", "phoneNumber": ANSWERS}, join_time=start)
    joined.state = ParticipantState.JOINED
    store.save(Conference("k-open", "open", CONFIG, start, participants=[joined]))

    assert gateway.conferences.recover() == 1
    conference = store.get("k-open")
    assert conference is not None and conference.end_time is not None
    assert conference.participants[0].state is ParticipantState.LEFT
    assert conference.error_code is not None and conference.error_code.name == "NORMAL_HANGUP"
    assert gateway.conferences.recover() == 0
    found, total = store.query(ConferenceQuery(call_id="c1"), 0, 10)
    assert total == 1 and found[0].id == "k-open"
