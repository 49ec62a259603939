"""The contract checker itself, proved on the spec's own verbatim examples.

If the checker passed everything, the response tests would prove nothing; these show that it
accepts what Infobip documents and names the field when a body strays from it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.contract import OpenApiContract, subscriptions, voice

CALL = "/calls/1/calls/d8d84155-3831-43fb-91c9-10b5a8d628a0"
EVENT_WEBHOOK = "calls-event-webhook"


@pytest.fixture
def spec(reference: Path) -> OpenApiContract:
    return voice(reference)


def examples(contract: OpenApiContract, method: str, template: str, status: str) -> dict:
    """The verbatim ``examples`` of one response, by name."""
    response = contract.resolve(contract.document["paths"][template][method]["responses"][status])
    content = response["content"]["application/json"]
    return {name: example["value"] for name, example in content.get("examples", {}).items()}


def phone_call(spec: OpenApiContract) -> dict[str, Any]:
    return copy.deepcopy(
        examples(spec, "get", "/calls/1/calls/{callId}", "200")["PHONE call response"]
    )


def violation(spec: OpenApiContract, body: Any, *, strict: bool = False) -> str:
    with pytest.raises(AssertionError) as raised:
        spec.validate("GET", CALL, 200, body, strict=strict)
    return str(raised.value)


def test_loaded_once_per_process(reference: Path) -> None:
    assert voice(reference) is voice(reference)
    assert subscriptions(reference) is not voice(reference)


@pytest.mark.parametrize(
    ("template", "status"),
    [
        ("/calls/1/calls/{callId}", "200"),
        ("/calls/1/calls/{callId}/history", "200"),
        ("/calls/1/calls/{callId}", "404"),
        ("/calls/1/calls", "400"),
        ("/calls/1/configurations", "201"),
    ],
)
def test_spec_examples_validate_strictly(spec: OpenApiContract, template: str, status: str) -> None:
    method = "post" if template.endswith(("/calls", "/configurations")) else "get"
    found = examples(spec, method, template, status)
    assert found, "the spec has examples for this response"
    for name, body in found.items():
        if name == "SIP call response":
            continue  # omits the required sipTrunkId: see the next test
        spec.validate(method, template.replace("{callId}", "abc"), int(status), body, strict=True)


def test_discriminator_is_followed_into_the_endpoint_subtype(spec: OpenApiContract) -> None:
    """The spec's own SIP example lacks ``sipTrunkId``, which ``SipEndpoint`` requires."""
    sip = examples(spec, "get", "/calls/1/calls/{callId}", "200")["SIP call response"]
    message = violation(spec, sip)
    assert "$.endpoint: 'sipTrunkId' is a required property" in message


def test_wrong_enum_value_names_the_field(spec: OpenApiContract) -> None:
    body = phone_call(spec) | {"state": "RUNNING"}
    message = violation(spec, body)
    assert "$.state: 'RUNNING' is not one of" in message
    assert "operationId get-call" in message


def test_missing_required_endpoint_is_reported(spec: OpenApiContract) -> None:
    body = phone_call(spec)
    del body["endpoint"]
    assert "$: 'endpoint' is a required property" in violation(spec, body)


def test_every_violation_is_listed(spec: OpenApiContract) -> None:
    body = phone_call(spec) | {"state": "RUNNING", "direction": "SIDEWAYS", "ringDuration": "3"}
    message = violation(spec, body)
    assert "3 contract violation(s)" in message
    for field in ("$.state", "$.direction", "$.ringDuration"):
        assert f"\n  {field}: " in message


def test_unknown_field_fails_only_when_strict(spec: OpenApiContract) -> None:
    body = phone_call(spec) | {"callsConfigurationIDs": ["dc5942707c704551a00cd2ea"]}
    spec.validate("GET", CALL, 200, body)
    message = violation(spec, body, strict=True)
    assert "$.callsConfigurationIDs: is not declared by the schema (strict)" in message


def test_strict_mode_walks_into_subtypes_and_free_form_maps(spec: OpenApiContract) -> None:
    body = phone_call(spec)
    body["endpoint"]["phoneNumbr"] = "41792036727"
    body["customData"]["anything"] = "goes"  # customData is a map: any key is declared
    message = violation(spec, body, strict=True)
    assert "$.endpoint.phoneNumbr: is not declared" in message
    assert "customData" not in message.split("body:")[0]


def test_date_time_must_be_infobip_wire_format(spec: OpenApiContract) -> None:
    body = phone_call(spec) | {"startTime": "2026-01-15T11:59:30Z"}
    assert "$.startTime: '2026-01-15T11:59:30Z' is not a 'date-time'" in violation(spec, body)


def test_literal_segments_beat_parameters(spec: OpenApiContract) -> None:
    assert spec.operation("GET", "/calls/1/calls/history")[0] == "/calls/1/calls/history"
    assert spec.operation("GET", "/calls/1/calls/x/history?page=0")[0] == (
        "/calls/1/calls/{callId}/history"
    )
    page = {"results": [], "paging": {"page": 0, "size": 20, "totalPages": 0, "totalResults": 0}}
    spec.validate("GET", "/calls/1/calls/history", 200, page, strict=True)


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("GET", "/calls/1/nowhere", 200, "no operation for GET /calls/1/nowhere"),
        ("DELETE", CALL, 200, "no operation for DELETE"),
        ("POST", CALL + "/send-ringing", 400, "send-ringing: status 400 is not declared"),
    ],
)
def test_unknown_path_method_or_status_fails(
    spec: OpenApiContract, method: str, path: str, status: int, expected: str
) -> None:
    with pytest.raises(AssertionError, match=expected):
        spec.validate(method, path, status, {})


def test_status_ranges_fall_back(spec: OpenApiContract) -> None:
    assert spec.response_schema("GET", "/tts/3/logs", 418)[1] is not None  # declared as 4XX


def test_error_bodies_use_api_exception(spec: OpenApiContract) -> None:
    body = {"requestError": {"serviceException": {"messageId": "UNAUTHORIZED", "text": "x"}}}
    spec.validate("GET", CALL, 401, body, strict=True)
    with pytest.raises(AssertionError, match=r"\$\.requestError\.serviceException\.message"):
        spec.validate("GET", CALL, 401, {"requestError": {"serviceException": {"message": "x"}}},
                      strict=True)  # fmt: skip


def call_finished_event(spec: OpenApiContract) -> dict[str, Any]:
    """A CALL_FINISHED event built from the spec's verbatim CallLog example."""
    log = examples(spec, "get", "/calls/1/calls/{callId}/history", "200")["PHONE call response"]
    return {
        "callId": log["callId"],
        "timestamp": "2026-01-15T12:00:00.000+0000",
        "callsConfigurationId": "dc5942707c704551a00cd2ea",
        "platform": {"applicationId": "61c060db2675060027d8c7a6"},
        "type": "CALL_FINISHED",
        "properties": {"callLog": copy.deepcopy(log)},
    }


def test_webhook_event_validates_through_its_discriminator(spec: OpenApiContract) -> None:
    event = call_finished_event(spec)
    spec.validate_webhook(EVENT_WEBHOOK, event, strict=True)
    event["properties"]["callLog"]["state"] = "DONE"
    event["properties"]["callLog"]["callsConfigurationId"] = "singular belongs to Call"
    with pytest.raises(AssertionError) as raised:
        spec.validate_webhook(EVENT_WEBHOOK, event, strict=True)
    message = str(raised.value)
    assert "$.properties.callLog.state: 'DONE' is not one of" in message
    assert "$.properties.callLog.callsConfigurationId: is not declared" in message


def test_unknown_event_type_fails(spec: OpenApiContract) -> None:
    event = call_finished_event(spec) | {"type": "CALL_HUNG_UP"}
    with pytest.raises(AssertionError, match=r"\$\.type: 'CALL_HUNG_UP' is not one of"):
        spec.validate_webhook(EVENT_WEBHOOK, event)


def test_subscriptions_examples_validate(reference: Path) -> None:
    subs = subscriptions(reference)
    template = "/subscriptions/1/subscription/{channel}/{subscriptionId}"
    path = "/subscriptions/1/subscription/VOICE_VIDEO/sub-1"
    for body in examples(subs, "get", template, "200").values():
        subs.validate("GET", path, 200, body, strict=True)
    with pytest.raises(AssertionError, match=r"\$\.profile\.profileID: is not declared"):
        subs.validate("PUT", path, 200, {"subscriptionId": "s", "profile": {"profileID": "p"}},
                      strict=True)  # fmt: skip
