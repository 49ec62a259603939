"""Every response body and webhook event the gateway produces, against Infobip's OpenAPI files.

The gateway runs in process; each route that exists is driven through its success and error
answers, and every body is validated with ``strict=True`` (no member the spec does not declare),
so that a client cannot tell the gateway from the cloud by the JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import Gateway
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.contract import OpenApiContract, subscriptions, voice

CALLS = "/calls/1/calls"
DIALOGS = "/calls/1/dialogs"
RECORDINGS = "/calls/1/recordings"
CONFIGURATIONS = "/calls/1/configurations"
SUBSCRIPTIONS = "/subscriptions/1/subscription/VOICE_VIDEO"
EVENT_WEBHOOK = "calls-event-webhook"

# Simulated numbers with short timings: one per way an outbound call can go.
FAST_ANSWER = "15550001111"
FAST_BUSY = "15550002222"
NUMBERS: dict[str, tuple[str, dict[str, int]]] = {
    FAST_ANSWER: ("answer", {"answerAfterMs": 50}),
    FAST_BUSY: ("busy", {"delayMs": 20}),
    "15550003333": ("reject", {"delayMs": 20}),
    "15550004444": ("fail", {"delayMs": 20, "sipStatus": 404}),
    "15550005555": ("no-answer", {}),
    "15550006666": ("early-media", {"earlyMediaMs": 50}),
    "15550007777": ("hangup-after", {"answerAfterMs": 20, "hangupAfterMs": 50}),
}
DID = "441134960100"  # a number the user owns, linked to the test configuration
CALLER = "15557654321"
FINAL_STATES = ("FINISHED", "FAILED", "CANCELLED", "NO_ANSWER", "BUSY")
CALL_EVENTS = [
    "CALL_RECEIVED",
    "CALL_STARTED",
    "CALL_RINGING",
    "CALL_PRE_ESTABLISHED",
    "CALL_ESTABLISHED",
    "CALL_FINISHED",
    "CALL_FAILED",
    "CALL_DISCONNECTED",
    "CALL_RECONNECTED",
]


@pytest.fixture
def spec(reference: Path) -> OpenApiContract:
    return voice(reference)


@pytest.fixture
def subs_spec(reference: Path) -> OpenApiContract:
    return subscriptions(reference)


def conforms(contract: OpenApiContract, response: httpx.Response, status: int) -> Any:
    """The body of ``response``, once its status is the expected one and it fits the spec."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: {response.status_code} "
        f"{response.text}"
    )
    body = response.json() if response.content else None
    contract.validate(response.request.method, response.request.url.path, status, body, strict=True)
    return body


@pytest.fixture
async def anonymous(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """The API without credentials."""
    transport = httpx.ASGITransport(app=gateway.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


@pytest.fixture
async def configuration(api: httpx.AsyncClient, spec: OpenApiContract) -> str:
    """A calls configuration that owns :data:`DID`, with the :data:`NUMBERS` to dial."""
    created = conforms(spec, await api.post(CONFIGURATIONS, json={"name": "contract"}), 201)
    linked = await api.put(
        f"/gateway/1/numbers/{DID}", json={"callsConfigurationId": created["id"]}
    )
    assert linked.status_code == 200, linked.text
    for number, (behaviour, options) in NUMBERS.items():
        body = {"number": number, "behaviour": behaviour, "options": options}
        added = await api.post("/pstn/1/numbers", json=body)
        assert added.status_code == 201, added.text
    return created["id"]


async def wait_for_state(
    api: httpx.AsyncClient, spec: OpenApiContract, call_id: str, *states: str, timeout: float = 5
) -> dict[str, Any]:
    """Poll ``GET /calls/1/calls/{id}`` (validating every answer) until the call is in a state."""
    async with asyncio.timeout(timeout):
        while True:
            call = conforms(spec, await api.get(f"{CALLS}/{call_id}"), 200)
            if call["state"] in states:
                return call
            await asyncio.sleep(0.02)


async def dial(
    api: httpx.AsyncClient, spec: OpenApiContract, config: str, number: str, **extra: Any
) -> dict[str, Any]:
    request = extra | {
        "endpoint": {"type": "PHONE", "phoneNumber": number},
        "from": CALLER,
        "callsConfigurationId": config,
        "customData": {"scenario": "contract"},
        "externalId": "external-1",
        "platform": {"applicationId": "app-1", "entityId": "entity-1"},
    }
    return conforms(spec, await api.post(CALLS, json=request), 201)


async def ring_in(api: httpx.AsyncClient, spec: OpenApiContract) -> dict[str, Any]:
    """A simulated caller dials :data:`DID`; the inbound call, as the Calls API shows it."""
    placed = await api.post("/pstn/1/calls", json={"from": CALLER, "to": DID})
    assert placed.status_code == 201, placed.text
    return await wait_for_state(api, spec, placed.json()["callId"], "RINGING")


# -- calls configurations -----------------------------------------------------------------


async def test_configurations(api: httpx.AsyncClient, spec: OpenApiContract) -> None:
    given = {"id": "contract-config_1", "name": "Contract"}
    assert conforms(spec, await api.post(CONFIGURATIONS, json=given), 201) == given
    generated = conforms(spec, await api.post(CONFIGURATIONS, json={}), 201)
    page = conforms(spec, await api.get(CONFIGURATIONS, params={"size": 1}), 200)
    assert page["paging"]["totalResults"] == 2
    path = f"{CONFIGURATIONS}/{given['id']}"
    conforms(spec, await api.get(path), 200)
    conforms(spec, await api.put(path, json={"name": "Renamed"}), 200)
    conforms(spec, await api.delete(path), 200)
    conforms(spec, await api.delete(f"{CONFIGURATIONS}/{generated['id']}"), 200)
    conforms(spec, await api.get(CONFIGURATIONS), 200)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", CONFIGURATIONS, {"id": "no spaces allowed"}, 400),
        ("POST", CONFIGURATIONS, {"name": "x", "unknown": 1}, 400),
        ("GET", CONFIGURATIONS + "?size=0", None, 400),
        ("PUT", CONFIGURATIONS + "/absent", {"name": "x"}, 404),
        ("PUT", CONFIGURATIONS + "/absent", {}, 400),
        ("GET", CONFIGURATIONS + "/absent", None, 404),
        ("DELETE", CONFIGURATIONS + "/absent", None, 404),
    ],
)
async def test_configuration_errors(
    api: httpx.AsyncClient, spec: OpenApiContract, method: str, path: str, body: Any, status: int
) -> None:
    conforms(spec, await api.request(method, path, json=body), status)


async def test_duplicate_configuration(api: httpx.AsyncClient, spec: OpenApiContract) -> None:
    conforms(spec, await api.post(CONFIGURATIONS, json={"id": "twice"}), 201)
    conforms(spec, await api.post(CONFIGURATIONS, json={"id": "twice"}), 400)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", CONFIGURATIONS),
        ("POST", CONFIGURATIONS),
        ("GET", CALLS),
        ("GET", f"{CALLS}/any-call"),
        ("POST", f"{CALLS}/any-call/hangup"),
        ("GET", f"{CALLS}/history"),
        ("POST", f"{CALLS}/any-call/start-recording"),
        ("POST", f"{DIALOGS}/any-dialog/stop-recording"),
        ("GET", f"{RECORDINGS}/calls"),
        ("GET", f"{RECORDINGS}/dialogs/any-dialog"),
        ("GET", f"{RECORDINGS}/files/any-file"),
        ("DELETE", f"{RECORDINGS}/files/any-file"),
    ],
)
async def test_unauthorized(
    anonymous: httpx.AsyncClient, spec: OpenApiContract, method: str, path: str
) -> None:
    conforms(spec, await anonymous.request(method, path, json={}), 401)
    wrong_key = {"Authorization": "App not-the-key"}
    conforms(spec, await anonymous.request(method, path, json={}, headers=wrong_key), 401)


# -- calls --------------------------------------------------------------------------------


async def test_outbound_call(
    api: httpx.AsyncClient, spec: OpenApiContract, configuration: str
) -> None:
    call = await dial(api, spec, configuration, FAST_ANSWER)
    call_id = call["id"]
    conforms(spec, await api.get(CALLS), 200)
    conforms(spec, await api.get(CALLS, params={"direction": "OUTBOUND", "size": 1}), 200)
    conforms(spec, await api.get(f"{CALLS}/{call_id}/history"), 404)  # not ended yet
    await wait_for_state(api, spec, call_id, "ESTABLISHED")
    hung_up = conforms(spec, await api.post(f"{CALLS}/{call_id}/hangup", json={}), 200)
    assert hung_up["state"] == "FINISHED"
    history = conforms(spec, await api.get(f"{CALLS}/history"), 200)
    assert [log["callId"] for log in history["results"]] == [call_id]
    params = {"callsConfigurationId": configuration, "startTimeAfter": call["startTime"]}
    conforms(spec, await api.get(f"{CALLS}/history", params=params), 200)
    log = conforms(spec, await api.get(f"{CALLS}/{call_id}/history"), 200)
    assert log["state"] == "FINISHED"


async def test_inbound_call_actions(
    api: httpx.AsyncClient, spec: OpenApiContract, configuration: str
) -> None:
    call = await ring_in(api, spec)
    verb = f"{CALLS}/{call['id']}"
    assert conforms(spec, await api.post(f"{verb}/send-ringing"), 200) == {"status": "PENDING"}
    conforms(spec, await api.post(f"{verb}/pre-answer", json={"customData": {"k": "v"}}), 200)
    await wait_for_state(api, spec, call["id"], "PRE_ESTABLISHED")
    conforms(spec, await api.post(f"{verb}/answer", json={}), 200)
    await wait_for_state(api, spec, call["id"], "ESTABLISHED")
    conforms(spec, await api.get(CALLS, params={"direction": "INBOUND"}), 200)
    conforms(spec, await api.post(f"{verb}/hangup", json={"errorCode": "NORMAL_HANGUP"}), 200)
    conforms(spec, await api.get(f"{verb}/history"), 200)
    conforms(spec, await api.post(f"{verb}/hangup"), 400)  # already ended


async def test_answer_without_pre_answer(
    api: httpx.AsyncClient, spec: OpenApiContract, configuration: str
) -> None:
    call = await ring_in(api, spec)
    conforms(spec, await api.post(f"{CALLS}/{call['id']}/answer"), 200)
    await wait_for_state(api, spec, call["id"], "ESTABLISHED")
    conforms(spec, await api.post(f"{CALLS}/{call['id']}/hangup"), 200)


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status"),
    [
        ("GET", "/absent-call", None, 404),
        ("GET", "/absent-call/history", None, 404),
        ("POST", "/absent-call/hangup", {}, 404),
        ("POST", "/absent-call/answer", {}, 404),
        ("POST", "/absent-call/pre-answer", {}, 404),
        ("POST", "/absent-call/send-ringing", None, 404),
        ("POST", "/absent-call/hangup", {"errorCode": "NOT_A_CODE"}, 400),
        ("POST", "", {}, 400),
        ("POST", "", {"endpoint": {"type": "PHONE", "phoneNumber": "1"}}, 400),
        ("GET", "?size=101", None, 400),
        ("GET", "/history?startTimeAfter=yesterday", None, 400),
    ],
)
async def test_call_errors(
    api: httpx.AsyncClient,
    spec: OpenApiContract,
    method: str,
    suffix: str,
    body: Any,
    status: int,
) -> None:
    conforms(spec, await api.request(method, CALLS + suffix, json=body), status)


@pytest.mark.parametrize("verb", ["answer", "pre-answer", "send-ringing"])
async def test_inbound_verbs_on_an_outbound_call(
    api: httpx.AsyncClient, spec: OpenApiContract, configuration: str, verb: str
) -> None:
    """A verb in the wrong state is a 400 in the ApiException shape. The spec declares no 400
    for send-ringing; the gateway answers it like answer and pre-answer, which declare one."""
    call = await dial(api, spec, configuration, FAST_ANSWER)
    response = await api.post(f"{CALLS}/{call['id']}/{verb}")
    assert response.status_code == 400, response.text
    declared = "answer" if verb == "send-ringing" else verb
    spec.validate("POST", f"{CALLS}/{call['id']}/{declared}", 400, response.json(), strict=True)


# -- subscriptions ------------------------------------------------------------------------


async def test_subscriptions(
    api: httpx.AsyncClient, subs_spec: OpenApiContract, configuration: str
) -> None:
    security = {
        "authId": "auth-1",
        "type": "BASIC",
        "credentials": {"username": "user", "password": "secret"},
    }
    conforms(subs_spec, await api.post("/subscriptions/1/security", json=security), 201)
    conforms(subs_spec, await api.get("/subscriptions/1/security"), 200)
    conforms(subs_spec, await api.get("/subscriptions/1/security/auth-1"), 200)
    hmac = {"type": "HMAC", "credentials": {"secretKey": "key", "algorithm": "HMAC_SHA_256"}}
    conforms(subs_spec, await api.put("/subscriptions/1/security/auth-1", json=hmac), 200)
    conforms(subs_spec, await api.get("/subscriptions/1/security/auth-1"), 200)

    profile = {
        "profileId": "profile-1",
        "webhook": {"notifyUrl": "http://127.0.0.1:9/hook"},
        "security": {"authId": "auth-1"},
        "connectTimeout": 1000,
        "readTimeout": 2000,
        "headers": {"X-Extra": "1"},
        "maxBucketSize": 1,
        "rateLimit": 10,
    }
    conforms(subs_spec, await api.post("/subscriptions/1/profiles", json=profile), 201)
    conforms(subs_spec, await api.get("/subscriptions/1/profiles"), 200)
    conforms(subs_spec, await api.get("/subscriptions/1/profiles/profile-1"), 200)
    changed = {"webhook": {"notifyUrl": "http://127.0.0.1:9/other"}}
    conforms(subs_spec, await api.put("/subscriptions/1/profiles/profile-1", json=changed), 200)

    subscription = {
        "subscriptionId": "sub-1",
        "name": "contract",
        "events": ["CALL_RECEIVED"],
        "criteria": [{"callsConfigurationId": configuration}],
        "profile": {"profileId": "profile-1"},
    }
    conforms(subs_spec, await api.post(SUBSCRIPTIONS, json=subscription), 201)
    conforms(subs_spec, await api.get(SUBSCRIPTIONS), 200)
    filtered = {"callsConfigurationId": configuration}
    assert conforms(subs_spec, await api.get(SUBSCRIPTIONS, params=filtered), 200)["results"]
    conforms(subs_spec, await api.get(f"{SUBSCRIPTIONS}/sub-1"), 200)
    update = {"events": ["CALL_RECEIVED", "CALL_FINISHED"], "profile": {"profileId": "profile-1"}}
    conforms(subs_spec, await api.put(f"{SUBSCRIPTIONS}/sub-1", json=update), 200)
    conforms(subs_spec, await api.delete(f"{SUBSCRIPTIONS}/sub-1"), 200)
    conforms(subs_spec, await api.delete("/subscriptions/1/profiles/profile-1"), 200)
    conforms(subs_spec, await api.delete("/subscriptions/1/security/auth-1"), 200)


async def test_subscription_with_inline_profile(
    api: httpx.AsyncClient, subs_spec: OpenApiContract
) -> None:
    subscription = {
        "subscriptionId": "sub-inline",
        "events": ["CALL_FINISHED"],
        "profile": {
            "profileId": "profile-inline",
            "webhook": {"notifyUrl": "https://example.com/hook", "contentType": "application/json"},
            "security": {
                "authId": "auth-inline",
                "type": "BASIC",
                "credentials": {"username": "u", "password": "p"},
            },
        },
    }
    conforms(subs_spec, await api.post(SUBSCRIPTIONS, json=subscription), 201)
    conforms(subs_spec, await api.get(f"{SUBSCRIPTIONS}/sub-inline"), 200)
    conforms(subs_spec, await api.get("/subscriptions/1/profiles/profile-inline"), 200)
    conforms(subs_spec, await api.get("/subscriptions/1/security/auth-inline"), 200)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/subscriptions/1/subscription/SMS", None, 400),
        ("GET", f"{SUBSCRIPTIONS}/absent", None, 404),
        ("PUT", f"{SUBSCRIPTIONS}/absent", {"events": [], "profile": {"profileId": "p"}}, 404),
        ("DELETE", f"{SUBSCRIPTIONS}/absent", None, 404),
        (
            "POST",
            SUBSCRIPTIONS,
            {"subscriptionId": "s", "events": ["NOPE"], "profile": {"profileId": "p"}},
            400,
        ),
        (
            "POST",
            SUBSCRIPTIONS,
            {"subscriptionId": "s", "events": [], "profile": {"profileId": "absent"}},
            400,
        ),
        ("GET", "/subscriptions/1/profiles/absent", None, 404),
        ("DELETE", "/subscriptions/1/profiles/absent", None, 404),
        ("POST", "/subscriptions/1/profiles", {"profileId": "p"}, 400),
        ("GET", "/subscriptions/1/security/absent", None, 404),
        ("POST", "/subscriptions/1/security", {"authId": "a", "type": "OAUTH"}, 400),
    ],
)
async def test_subscription_errors(
    api: httpx.AsyncClient,
    subs_spec: OpenApiContract,
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    conforms(subs_spec, await api.request(method, path, json=body), status)


async def test_subscriptions_unauthorized(
    anonymous: httpx.AsyncClient, subs_spec: OpenApiContract
) -> None:
    conforms(subs_spec, await anonymous.get(SUBSCRIPTIONS), 401)


# -- webhook events -----------------------------------------------------------------------


@pytest.fixture
async def recorder(
    api: httpx.AsyncClient, subs_spec: OpenApiContract, configuration: str
) -> AsyncIterator[WebhookRecorder]:
    """A webhook subscribed to every CALL_* event of the test configuration."""
    async with WebhookRecorder() as rec:
        subscription = {
            "subscriptionId": "contract-events",
            "events": CALL_EVENTS,
            "criteria": [{"callsConfigurationId": configuration}],
            "profile": {"profileId": "contract-events", "webhook": {"notifyUrl": rec.url}},
        }
        conforms(subs_spec, await api.post(SUBSCRIPTIONS, json=subscription), 201)
        yield rec


def assert_events_conform(spec: OpenApiContract, events: list[dict[str, Any]]) -> None:
    """Validate every event, and report all the failing ones together."""
    failures = []
    for event in events:
        try:
            spec.validate_webhook(EVENT_WEBHOOK, event, strict=True)
        except AssertionError as error:
            failures.append(str(error))
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("number", [FAST_ANSWER, "15550006666"], ids=["answer", "early-media"])
async def test_answered_call_events(
    api: httpx.AsyncClient,
    spec: OpenApiContract,
    configuration: str,
    recorder: WebhookRecorder,
    number: str,
) -> None:
    call = await dial(api, spec, configuration, number)
    await recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call["id"])
    conforms(spec, await api.post(f"{CALLS}/{call['id']}/hangup"), 200)
    await recorder.wait_for(types=["CALL_FINISHED"], call_id=call["id"])
    assert {"CALL_STARTED", "CALL_ESTABLISHED", "CALL_FINISHED"} <= set(recorder.types(call["id"]))
    assert_events_conform(spec, recorder.events(call["id"]))


@pytest.mark.parametrize(
    ("number", "extra", "final"),
    [
        pytest.param(FAST_BUSY, {}, "CALL_FAILED", id="busy"),
        pytest.param("15550003333", {}, "CALL_FAILED", id="reject"),
        pytest.param("15550004444", {}, "CALL_FAILED", id="fail-404"),
        pytest.param("15559990000", {}, "CALL_FAILED", id="no-such-number"),
        pytest.param("15550005555", {"connectTimeout": 1}, "CALL_FAILED", id="no-answer"),
        pytest.param("15550007777", {}, "CALL_FINISHED", id="callee-hangs-up"),
        pytest.param(FAST_ANSWER, {"maxDuration": 1}, "CALL_FINISHED", id="max-duration"),
    ],
)
async def test_call_outcomes(
    api: httpx.AsyncClient,
    spec: OpenApiContract,
    configuration: str,
    recorder: WebhookRecorder,
    number: str,
    extra: dict[str, int],
    final: str,
) -> None:
    """Calls that end without the API: the views, the history and every event conform."""
    call = await dial(api, spec, configuration, number, **extra)
    await wait_for_state(api, spec, call["id"], *FINAL_STATES)
    conforms(spec, await api.get(f"{CALLS}/{call['id']}/history"), 200)
    await recorder.wait_for(types=[final], call_id=call["id"])
    assert_events_conform(spec, recorder.events(call["id"]))


async def test_inbound_call_events(
    api: httpx.AsyncClient, spec: OpenApiContract, configuration: str, recorder: WebhookRecorder
) -> None:
    call = await ring_in(api, spec)
    await recorder.wait_for(types=["CALL_RECEIVED"], call_id=call["id"])
    conforms(spec, await api.post(f"{CALLS}/{call['id']}/pre-answer"), 200)
    await recorder.wait_for(types=["CALL_PRE_ESTABLISHED"], call_id=call["id"])
    conforms(spec, await api.post(f"{CALLS}/{call['id']}/answer"), 200)
    await recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call["id"])
    hangup = await api.post(f"/pstn/1/calls/{call['id']}/hangup")  # the caller hangs up
    assert hangup.status_code == 200, hangup.text
    await recorder.wait_for(types=["CALL_FINISHED"], call_id=call["id"])
    assert_events_conform(spec, recorder.events(call["id"]))


@pytest.mark.parametrize("by", ["caller", "api"])
async def test_inbound_call_ended_while_ringing(
    api: httpx.AsyncClient,
    spec: OpenApiContract,
    configuration: str,
    recorder: WebhookRecorder,
    by: str,
) -> None:
    call = await ring_in(api, spec)
    if by == "caller":
        abandoned = await api.post(f"/pstn/1/calls/{call['id']}/hangup")
        assert abandoned.status_code == 200, abandoned.text
    else:
        rejected = await api.post(f"{CALLS}/{call['id']}/hangup", json={"errorCode": "BUSY"})
        conforms(spec, rejected, 200)
    await recorder.wait_for(types=["CALL_FAILED"], call_id=call["id"])
    conforms(spec, await api.get(f"{CALLS}/{call['id']}/history"), 200)
    assert_events_conform(spec, recorder.events(call["id"]))


# -- recordings -----------------------------------------------------------------------------

RECORDING_EVENTS = [
    f"{owner}_RECORDING_{what}"
    for owner in ("CALL", "DIALOG")
    for what in ("STARTED", "STOPPED", "READY", "FAILED")
]


@pytest.fixture
async def recording_events(
    api: httpx.AsyncClient, subs_spec: OpenApiContract, configuration: str
) -> AsyncIterator[WebhookRecorder]:
    """A webhook subscribed to the recording events (and DIALOG_ESTABLISHED) of the test
    configuration."""
    async with WebhookRecorder() as rec:
        subscription = {
            "subscriptionId": "contract-recordings",
            "events": [*RECORDING_EVENTS, "DIALOG_ESTABLISHED"],
            "criteria": [{"callsConfigurationId": configuration}],
            "profile": {"profileId": "contract-recordings", "webhook": {"notifyUrl": rec.url}},
        }
        conforms(subs_spec, await api.post(SUBSCRIPTIONS, json=subscription), 201)
        yield rec


async def test_call_recordings(
    api: httpx.AsyncClient,
    spec: OpenApiContract,
    configuration: str,
    recording_events: WebhookRecorder,
) -> None:
    recording = {"recordingType": "AUDIO", "customData": {"k": "v"}, "filePrefix": "contract"}
    call = await dial(api, spec, configuration, FAST_ANSWER, recording=recording)
    verb = f"{CALLS}/{call['id']}"
    await recording_events.wait_for(types=["CALL_RECORDING_STARTED"], call_id=call["id"])
    conforms(spec, await api.post(f"{verb}/start-recording", json={"recording": recording}), 400)
    assert conforms(spec, await api.post(f"{verb}/stop-recording"), 200) == {"status": "PENDING"}
    conforms(spec, await api.post(f"{verb}/stop-recording"), 400)
    await recording_events.wait_for(types=["CALL_RECORDING_READY"], call_id=call["id"])
    timed = {"recording": {"recordingType": "AUDIO_AND_VIDEO", "maxDuration": 60}}
    conforms(spec, await api.post(f"{verb}/start-recording", json=timed), 200)
    conforms(spec, await api.post(f"{verb}/hangup"), 200)  # stops it
    ready = ["CALL_RECORDING_READY", "CALL_RECORDING_READY"]
    await recording_events.wait_for(types=ready, call_id=call["id"])

    conforms(spec, await api.get(f"{RECORDINGS}/calls"), 200)
    params = {"callsConfigurationId": configuration, "direction": "OUTBOUND", "size": 1}
    conforms(spec, await api.get(f"{RECORDINGS}/calls", params=params), 200)
    one = conforms(spec, await api.get(f"{RECORDINGS}/calls/{call['id']}"), 200)
    file_id = one["files"][0]["id"]
    url = f"{RECORDINGS}/files/{file_id}"
    for headers, status in (({}, 200), ({"Range": "bytes=0-43"}, 206)):
        download = await api.get(url, headers=headers)
        assert download.status_code == status, download.text
        spec.validate_media_type("GET", url, status, download.headers["content-type"])
    conforms(spec, await api.get(url, headers={"Range": "bytes=99999999-"}), 416)
    conforms(spec, await api.delete(url), 200)
    conforms(spec, await api.delete(f"{RECORDINGS}/calls/{call['id']}"), 200)
    for method, path in (
        ("GET", f"{RECORDINGS}/calls/{call['id']}"),
        ("DELETE", f"{RECORDINGS}/calls/absent"),
        ("GET", url),
        ("DELETE", url),
        ("POST", f"{CALLS}/absent/stop-recording"),
    ):
        conforms(spec, await api.request(method, path), 404)
    conforms(spec, await api.post(f"{CALLS}/absent/start-recording", json=timed), 404)
    conforms(spec, await api.post(f"{verb}/start-recording", json={}), 400)
    conforms(spec, await api.get(f"{RECORDINGS}/calls", params={"endTimeBefore": "x"}), 400)
    assert_events_conform(spec, recording_events.events())


async def test_dialog_recordings(
    api: httpx.AsyncClient,
    spec: OpenApiContract,
    configuration: str,
    recording_events: WebhookRecorder,
) -> None:
    parent = await dial(api, spec, configuration, FAST_ANSWER)
    await wait_for_state(api, spec, parent["id"], "ESTABLISHED")
    body = {
        "parentCallId": parent["id"],
        "childCallRequest": {"endpoint": {"type": "PHONE", "phoneNumber": FAST_ANSWER}},
        "recording": {"recordingType": "AUDIO", "dialogComposition": {"enabled": True}},
    }
    dialog = conforms(spec, await api.post(DIALOGS, json=body), 201)
    verb = f"{DIALOGS}/{dialog['id']}"
    of_dialog = {"predicate": lambda e: e.get("dialogId") == dialog["id"]}
    await recording_events.wait_for(types=["DIALOG_RECORDING_STARTED"], **of_dialog)
    conforms(spec, await api.post(f"{verb}/start-recording", json=body["recording"]), 400)
    conforms(spec, await api.post(f"{verb}/stop-recording"), 200)
    await recording_events.wait_for(types=["DIALOG_RECORDING_READY"], **of_dialog)
    separate = {"recordingType": "AUDIO", "customData": {"k": "v"}, "filePrefix": "d"}
    conforms(spec, await api.post(f"{verb}/start-recording", json=separate), 200)
    conforms(spec, await api.post(f"{verb}/hangup"), 200)
    ready = ["DIALOG_RECORDING_READY", "DIALOG_RECORDING_READY"]
    await recording_events.wait_for(types=ready, **of_dialog)

    conforms(spec, await api.get(f"{RECORDINGS}/dialogs"), 200)
    params = {
        "dialogId": dialog["id"],
        "composition": "true",
        "startTimeAfter": "2020-01-01T00:00:00.000+0000",
    }
    conforms(spec, await api.get(f"{RECORDINGS}/dialogs", params=params), 200)
    conforms(spec, await api.get(f"{RECORDINGS}/dialogs/{dialog['id']}"), 200)
    conforms(spec, await api.delete(f"{RECORDINGS}/dialogs/{dialog['id']}"), 200)
    conforms(spec, await api.get(f"{RECORDINGS}/dialogs/{dialog['id']}"), 404)
    conforms(spec, await api.delete(f"{RECORDINGS}/dialogs/absent"), 404)
    conforms(spec, await api.post(f"{DIALOGS}/absent/start-recording", json=separate), 404)
    conforms(spec, await api.post(f"{DIALOGS}/absent/stop-recording"), 404)
    conforms(spec, await api.post(f"{verb}/stop-recording"), 400)
    assert_events_conform(spec, recording_events.events())
