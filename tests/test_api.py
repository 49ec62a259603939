"""The REST surface in process: auth, configurations, calls validation, DIDs, the simulator API."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from tests.conftest import API_KEY


def error_of(response: httpx.Response) -> dict:
    return response.json()["requestError"]["serviceException"]


async def wait_state(api: httpx.AsyncClient, call_id: str, state: str, timeout: float = 5) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            call = (await api.get(f"/calls/1/calls/{call_id}")).json()
            if call["state"] == state:
                return call
            await asyncio.sleep(0.01)


@pytest.fixture
async def config_id(api: httpx.AsyncClient) -> str:
    response = await api.post("/calls/1/configurations", json={"id": "cfg-1", "name": "First"})
    assert response.status_code == 201
    return "cfg-1"


async def test_every_route_needs_the_key(api: httpx.AsyncClient):
    anonymous = httpx.AsyncClient(transport=api._transport, base_url="http://gateway")
    for method, path in [
        ("GET", "/calls/1/configurations"),
        ("POST", "/calls/1/calls"),
        ("GET", "/calls/1/calls/history"),
        ("GET", "/subscriptions/1/subscription/VOICE_VIDEO"),
        ("GET", "/pstn/1/numbers"),
        ("GET", "/gateway/1/numbers"),
    ]:
        for headers in [{}, {"Authorization": "App wrong"}, {"Authorization": f"Bearer {API_KEY}"}]:
            response = await anonymous.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert error_of(response)["messageId"] == "UNAUTHORIZED"
    basic = base64.b64encode(f"gateway:{API_KEY}".encode()).decode()
    ok = await anonymous.get("/calls/1/configurations", headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200
    wrong_user = base64.b64encode(f"admin:{API_KEY}".encode()).decode()
    denied = await anonymous.get(
        "/calls/1/configurations", headers={"Authorization": f"Basic {wrong_user}"}
    )
    assert denied.status_code == 401
    assert (await anonymous.get("/health")).json()["status"] == "UP"


async def test_configurations_crud_and_paging(api: httpx.AsyncClient):
    generated = (await api.post("/calls/1/configurations", json={"name": "Generated"})).json()
    assert len(generated["id"]) == 24 and generated["name"] == "Generated"
    for n in range(3):
        assert (await api.post("/calls/1/configurations", json={"id": f"c{n}"})).status_code == 201
    page = (await api.get("/calls/1/configurations", params={"page": 1, "size": 2})).json()
    assert [c["id"] for c in page["results"]] == ["c1", "c2"]
    assert page["paging"] == {"page": 1, "size": 2, "totalPages": 2, "totalResults": 4}
    assert (await api.put("/calls/1/configurations/c1", json={"name": "Renamed"})).json() == {
        "id": "c1",
        "name": "Renamed",
    }
    assert (await api.get("/calls/1/configurations/c1")).json()["name"] == "Renamed"
    assert (await api.delete("/calls/1/configurations/c1")).status_code == 200
    missing = await api.get("/calls/1/configurations/c1")
    assert missing.status_code == 404 and error_of(missing)["messageId"] == "NOT_FOUND"
    duplicate = await api.post("/calls/1/configurations", json={"id": "c2"})
    assert duplicate.status_code == 400 and "id" in error_of(duplicate)["validationErrors"]
    bad = await api.post("/calls/1/configurations", json={"id": "has space"})
    assert bad.status_code == 400 and "id" in error_of(bad)["validationErrors"]
    too_big = await api.get("/calls/1/configurations", params={"size": 101})
    assert too_big.status_code == 400 and "size" in error_of(too_big)["validationErrors"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"endpoint": {"type": "PHONE", "phoneNumber": "441134960000"}}, "callsConfigurationId"),
        ({"callsConfigurationId": "cfg-1"}, "endpoint"),
        ({"endpoint": {"type": "FAX"}, "callsConfigurationId": "cfg-1"}, "endpoint.type"),
        ({"endpoint": {"type": "PHONE"}, "callsConfigurationId": "cfg-1"}, "endpoint.phoneNumber"),
        (
            {"endpoint": {"type": "PHONE", "phoneNumber": "12ab"}, "callsConfigurationId": "cfg-1"},
            "endpoint.phoneNumber",
        ),
        (
            {
                "endpoint": {"type": "SIP", "username": "bob", "sipTrunkId": "t"},
                "callsConfigurationId": "cfg-1",
            },
            "endpoint.sipTrunkId",
        ),
        (
            {"endpoint": {"type": "WEBSOCKET"}, "callsConfigurationId": "cfg-1"},
            "endpoint.type",
        ),
        (
            {"endpoint": {"type": "WEBRTC", "identity": "b"}, "callsConfigurationId": "cfg-1"},
            "endpoint.identity",
        ),
        (
            {
                "endpoint": {"type": "PHONE", "phoneNumber": "441134960000"},
                "callsConfigurationId": "nope",
            },
            "callsConfigurationId",
        ),
        (
            {
                "endpoint": {"type": "PHONE", "phoneNumber": "441134960000"},
                "callsConfigurationId": "cfg-1",
                "connectTimeout": 61,
            },
            "connectTimeout",
        ),
        (
            {
                "endpoint": {"type": "PHONE", "phoneNumber": "441134960000"},
                "callsConfigurationId": "cfg-1",
                "maxDuration": 0,
            },
            "maxDuration",
        ),
        (
            {
                "endpoint": {"type": "PHONE", "phoneNumber": "441134960000"},
                "callsConfigurationId": "cfg-1",
                "customData": {"n": 1},
            },
            "customData.n",
        ),
        (
            {
                "endpoint": {"type": "PHONE", "phoneNumber": "441134960000"},
                "callsConfigurationId": "cfg-1",
                "conectTimeout": 5,
            },
            "conectTimeout",
        ),
    ],
)
async def test_create_call_names_the_bad_field(api, config_id, gateway, body, field):
    response = await api.post("/calls/1/calls", json=body)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["messageId"] == "BAD_REQUEST"
    assert field in error["validationErrors"], error
    assert gateway.calls.live_count == 0
    assert (await api.get("/calls/1/calls")).json()["paging"]["totalResults"] == 0


async def test_malformed_json_is_a_400(api, config_id):
    response = await api.post(
        "/calls/1/calls", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and error_of(response)["messageId"] == "BAD_REQUEST"
    assert error_of(response)["validationErrors"] == {"body": ["is not valid JSON"]}
    slash = await api.get("/calls/1/calls/")
    assert slash.status_code == 404 and error_of(slash)["messageId"] == "NOT_FOUND"


async def test_wrong_state_and_unknown_ids(api, config_id):
    for path in ("answer", "hangup", "pre-answer", "send-ringing"):
        missing = await api.post(f"/calls/1/calls/nope/{path}", json={})
        assert missing.status_code == 404, path
    assert (await api.get("/calls/1/calls/nope/history")).status_code == 404
    created = await api.post(
        "/calls/1/calls",
        json={
            "endpoint": {"type": "PHONE", "phoneNumber": "441134960002"},
            "callsConfigurationId": config_id,
            "from": "441134960999",
        },
    )
    call_id = created.json()["id"]
    outbound_answer = await api.post(f"/calls/1/calls/{call_id}/answer", json={})
    assert outbound_answer.status_code == 400 and "outbound" in error_of(outbound_answer)["text"]
    not_yet = await api.post(
        f"/calls/1/calls/{call_id}/hangup", json={"errorCode": "NORMAL_HANGUP"}
    )
    assert not_yet.status_code == 400 and "established" in error_of(not_yet)["text"]
    unknown_code = await api.post(f"/calls/1/calls/{call_id}/hangup", json={"errorCode": "OOPS"})
    assert (
        unknown_code.status_code == 400
        and "errorCode" in error_of(unknown_code)["validationErrors"]
    )
    assert (await api.get(f"/calls/1/calls/{call_id}/history")).status_code == 404
    cancelled = await api.post(f"/calls/1/calls/{call_id}/hangup", json={})
    assert cancelled.json()["state"] == "CANCELLED"
    again = await api.post(f"/calls/1/calls/{call_id}/hangup", json={})
    assert again.status_code == 400 and "already ended" in error_of(again)["text"]
    log = (await api.get(f"/calls/1/calls/{call_id}/history")).json()
    assert (log["state"], log["errorCode"]["name"], log["hangupSource"]) == (
        "CANCELLED",
        "CANCELLED",
        "API",
    )


async def test_inbound_verbs_and_dids(api, config_id):
    refused = await api.post("/pstn/1/calls", json={"from": "15557654321", "to": "441134960100"})
    assert refused.status_code == 404 and "not linked" in error_of(refused)["text"]
    bad_link = await api.put(
        "/gateway/1/numbers/441134960100", json={"callsConfigurationId": "zzz"}
    )
    assert bad_link.status_code == 400
    linked = await api.put(
        "/gateway/1/numbers/441134960100", json={"callsConfigurationId": config_id}
    )
    assert linked.json() == {"number": "441134960100", "callsConfigurationId": config_id}
    assert (await api.get("/gateway/1/numbers")).json()["results"] == [linked.json()]
    placed = await api.post("/pstn/1/calls", json={"from": "15557654321", "to": "441134960100"})
    assert placed.status_code == 201
    call_id = placed.json()["callId"]
    assert (await api.post(f"/calls/1/calls/{call_id}/send-ringing")).json() == {
        "status": "PENDING"
    }
    assert (
        await api.post(f"/calls/1/calls/{call_id}/pre-answer", json={"ringing": False})
    ).json() == {"status": "PENDING"}
    await wait_state(api, call_id, "PRE_ESTABLISHED")
    assert (await api.post(f"/calls/1/calls/{call_id}/pre-answer", json={})).status_code == 400
    assert (await api.post(f"/calls/1/calls/{call_id}/answer")).status_code == 200
    await wait_state(api, call_id, "ESTABLISHED")
    phone = (await api.get(f"/pstn/1/calls/{call_id}")).json()
    assert [entry["event"] for entry in phone["log"]] == [
        "dialled; the platform is alerting",
        "heard ringing",
        "early-media",
        "answered by the platform",
    ]
    assert (await api.post(f"/pstn/1/calls/{call_id}/hangup")).json()["state"] == "ended"
    assert (await api.post(f"/pstn/1/calls/{call_id}/hangup")).status_code == 400
    finished = await wait_state(api, call_id, "FINISHED")
    assert finished["direction"] == "INBOUND"
    assert (await api.delete("/gateway/1/numbers/441134960100")).status_code == 200
    assert (await api.get("/gateway/1/numbers/441134960100")).status_code == 404


TONE_OF_NONE = {"type": "tone"}  # a tone needs its frequency


async def test_simulator_numbers(api):
    listed = (await api.get("/pstn/1/numbers")).json()["results"]
    behaviours = {n["behaviour"] for n in listed}
    assert behaviours == {
        "answer",
        "busy",
        "no-answer",
        "reject",
        "fail",
        "early-media",
        "hangup-after",
        "human",
        "machine",
    }
    machines = [n for n in listed if n["behaviour"] == "machine"]
    assert sorted(n["options"]["beep"] for n in machines) == [0, 1]
    for behaviour, options in (("human", {"seed": 7}), ("machine", {"seed": 8, "beep": 1})):
        body = {"number": f"1555000{len(options)}999", "behaviour": behaviour, "options": options}
        made = await api.post("/pstn/1/numbers", json=body)
        assert made.status_code == 201, made.text
        assert made.json()["options"] == {"ringAfterMs": 0, "answerAfterMs": 2000, **options}
    added = await api.post(
        "/pstn/1/numbers",
        json={"number": "15550001111", "behaviour": "answer", "options": {"answerAfterMs": 5}},
    )
    assert added.status_code == 201 and added.json()["options"] == {
        "ringAfterMs": 0,
        "answerAfterMs": 5,
    }
    for body, field in [
        ({"number": "x", "behaviour": "answer"}, "number"),
        ({"number": "15550001112", "behaviour": "sing"}, "behaviour"),
        (
            {"number": "15550001112", "behaviour": "busy", "options": {"answerAfterMs": 5}},
            "options.answerAfterMs",
        ),
        (
            {"number": "15550001112", "behaviour": "busy", "options": {"delayMs": -1}},
            "options.delayMs",
        ),
        (
            {"number": "15550001112", "behaviour": "fail", "options": {"sipStatus": 200}},
            "options.sipStatus",
        ),
        (
            {"number": "15550001112", "behaviour": "machine", "options": {"beep": 2}},
            "options.beep",
        ),
        (
            {"number": "15550001112", "behaviour": "human", "options": {"beep": 1}},
            "options.beep",
        ),
        (
            {"number": "15550001112", "behaviour": "busy", "options": {"source": {}}},
            "options.source",
        ),
        (
            {"number": "1555000111", "behaviour": "answer", "options": {"source": {"type": "x"}}},
            "options.source.type",
        ),
        (
            {"number": "1555000111", "behaviour": "answer", "options": {"source": TONE_OF_NONE}},
            "options.source.frequency",
        ),
        (
            {
                "number": "1555000111",
                "behaviour": "answer",
                "options": {"source": {"type": "file", "fileId": "nope"}},
            },
            "options.source.fileId",
        ),
    ]:
        response = await api.post("/pstn/1/numbers", json=body)
        assert response.status_code == 400 and field in error_of(response)["validationErrors"], body
