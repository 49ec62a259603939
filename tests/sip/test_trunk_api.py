"""``/calls/1/sip-trunks``: STATIC and REGISTERED trunks, their credentials, status and errors.

Each scenario is a plain coroutine: the behavioural tests run them one by one, and the contract
test runs them all and checks every response the client saw against Infobip's OpenAPI file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.app import Gateway
from tests.conftest import API_KEY
from tests.contract import voice
from trunks.sip.trunk_store import (
    Destination,
    TrunkStore,
    parse_destination,
    trunks_table,
)

TRUNKS = "/calls/1/sip-trunks"
Recorded = list[tuple[str, str, int, Any]]

STATIC = {
    "type": "STATIC",
    "name": "Static SIP trunk",
    "location": "NEW_YORK",
    "internationalCallsAllowed": False,
    "channelLimit": 10,
    "billingPackage": {"packageType": "UNLIMITED", "countryCode": "USA", "addressId": "5629"},
    "tls": False,
    "codecs": ["PCMU", "PCMA"],
    "dtmf": "INBAND",
    "fax": "T38",
    "numberFormat": "US_NATIONAL",
    "anonymization": "REMOTE_PARTY_ID",
    "sourceHosts": ["10.10.10.10"],
    "destinationHosts": ["100.100.100.101:5060", "my.destination.com", "my.destination.com:0"],
    "strategy": "ROUND_ROBIN",
    "sipOptions": {"enabled": False},
}
REGISTERED = {
    "type": "REGISTERED",
    "name": "Registered SIP trunk",
    "channelLimit": 999,
    "billingPackage": {"packageType": "METERED"},
    "tls": True,
    "codecs": ["G729"],
    "inviteAuthentication": True,
}


@pytest.fixture
def recorded() -> Recorded:
    return []


@pytest.fixture
async def trunks(gateway: Gateway, recorded: Recorded) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway's API in process, authenticated, keeping every response for the contract."""
    assert gateway.api is not None

    async def record(response: httpx.Response) -> None:
        await response.aread()
        body = response.json() if response.content else None
        recorded.append(
            (response.request.method, response.request.url.path, response.status_code, body)
        )

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.api),
        base_url="http://gateway",
        headers={"Authorization": f"App {API_KEY}"},
        event_hooks={"response": [record]},
    ) as client:
        yield client


def error_fields(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.text
    exception = response.json()["requestError"]["serviceException"]
    assert exception["messageId"] == "BAD_REQUEST"
    return exception["validationErrors"]


def ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    return hashlib.new(algorithm, f"{username}:{realm}:{password}".encode()).hexdigest()


async def create(api: httpx.AsyncClient, body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    response = await api.post(TRUNKS, json={**body, **changes})
    assert response.status_code == 202, response.text
    return response.json()


# -- scenarios ---------------------------------------------------------------------------------


async def static_crud(api: httpx.AsyncClient, gateway: Gateway) -> None:
    created = await create(api, STATIC)
    assert re.fullmatch(r"[0-9a-f]{24}", created["id"])
    assert {k: v for k, v in created.items() if k not in ("id", "sbcHosts")} == STATIC
    port = gateway.settings.sip_port
    assert created["sbcHosts"] == {"primary": [f"127.0.0.1:{port}"], "backup": []}
    trunk_id = created["id"]

    fetched = await api.get(f"{TRUNKS}/{trunk_id}")
    assert fetched.status_code == 200 and fetched.json() == created

    other = await create(api, STATIC, name="Other", sourceHosts=[], destinationHosts=["pbx"])
    assert other["codecs"] == ["PCMU", "PCMA"]
    listed = (await api.get(TRUNKS, params={"page": 1, "size": 1})).json()
    assert listed["results"] == [other]
    assert listed["paging"] == {"page": 1, "size": 1, "totalPages": 2, "totalResults": 2}
    by_name = (await api.get(TRUNKS, params={"name": "Other"})).json()
    assert [t["id"] for t in by_name["results"]] == [other["id"]]
    assert (await api.get(TRUNKS, params={"size": 0})).status_code == 400

    update = {
        "type": "STATIC",
        "name": "Renamed",
        "channelLimit": 20,
        "destinationHosts": ["[2001:db8::5]:5070"],
        "sipOptions": {"enabled": True},
    }
    updated = await api.put(f"{TRUNKS}/{trunk_id}", json=update)
    assert updated.status_code == 202, updated.text
    expected = created | {
        "name": "Renamed",
        "channelLimit": 20,
        "destinationHosts": ["[2001:db8::5]:5070"],
        "sipOptions": {"enabled": True},
    }
    assert updated.json() == expected  # members the update leaves out keep their values
    assert (await api.get(f"{TRUNKS}/{trunk_id}")).json() == expected

    deleted = await api.delete(f"{TRUNKS}/{trunk_id}")
    assert deleted.status_code == 202 and deleted.json() == expected
    assert (await api.get(f"{TRUNKS}/{trunk_id}")).status_code == 404
    assert (await api.delete(f"{TRUNKS}/{trunk_id}")).status_code == 404


async def registered_credentials(api: httpx.AsyncClient, gateway: Gateway) -> None:
    created = await create(api, REGISTERED)
    username, password = created["username"], created["password"]
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", username)
    assert len(password) >= 20
    tls_port = gateway.settings.sip_tls_port
    assert created["sbcHosts"]["primary"] == [f"127.0.0.1:{tls_port}"]
    assert created["dtmf"] == "RFC2833" and created["inviteAuthentication"] is True
    assert "sourceHosts" not in created and "sipOptions" not in created

    store: TrunkStore = gateway.sip_trunks
    trunk = store.by_username(username)
    assert trunk is not None and trunk.id == created["id"]
    realm = store.realm
    assert trunk.realm == realm
    assert trunk.ha1_md5 == ha1(username, realm, password, "md5")
    assert trunk.ha1_sha256 == ha1(username, realm, password, "sha256")
    assert trunk.credentials is not None and trunk.credentials.get("SHA-256") == trunk.ha1_sha256
    assert store.by_username("nobody") is None

    with gateway.db.begin() as conn:
        stored = [str(value) for row in conn.execute(select(trunks_table)).all() for value in row]
    assert not any(password in value for value in stored)

    trunk_id = created["id"]
    for path in (f"{TRUNKS}/{trunk_id}", TRUNKS, f"{TRUNKS}/{trunk_id}/status"):
        response = await api.get(path)
        assert response.status_code == 200 and password not in response.text
    fetched = (await api.get(f"{TRUNKS}/{trunk_id}")).json()
    assert fetched == {k: v for k, v in created.items() if k != "password"}

    reset = await api.post(f"{TRUNKS}/{trunk_id}/reset-password")
    assert reset.status_code == 200
    fresh = reset.json()
    assert fresh["username"] == username and fresh["type"] == "REGISTERED"
    assert fresh["password"] != password and len(fresh["password"]) >= 20
    trunk = store.get(trunk_id)
    assert trunk is not None
    assert trunk.ha1_md5 != ha1(username, realm, password, "md5")
    assert trunk.ha1_sha256 != ha1(username, realm, password, "sha256")
    assert trunk.ha1_md5 == ha1(username, realm, fresh["password"], "md5")
    assert trunk.ha1_sha256 == ha1(username, realm, fresh["password"], "sha256")

    updated = await api.put(
        f"{TRUNKS}/{trunk_id}",
        json={"type": "REGISTERED", "name": "Renamed", "inviteAuthentication": False},
    )
    assert updated.status_code == 202
    assert updated.json() == fetched | {"name": "Renamed", "inviteAuthentication": False}
    assert store.get(trunk_id).ha1_md5 == trunk.ha1_md5  # an update keeps the credentials

    deleted = await api.delete(f"{TRUNKS}/{trunk_id}")
    assert deleted.status_code == 202 and "password" not in deleted.json()
    assert store.by_username(username) is None


async def status_flow(api: httpx.AsyncClient, gateway: Gateway) -> None:
    static = await create(api, STATIC)
    registered = await create(api, REGISTERED)
    status = (await api.get(f"{TRUNKS}/{static['id']}/status")).json()
    assert status == {
        "adminStatus": "ENABLED",
        "actionStatus": {"status": "SUCCESS"},
        "activeCalls": 0,
    }
    status = (await api.get(f"{TRUNKS}/{registered['id']}/status")).json()
    assert status["registrationStatus"] == "UNREGISTERED"

    runtime = gateway.sip
    gateway.sip = SimpleNamespace(trunk_runtime=lambda trunk_id: ("REGISTERED", 3))
    try:
        status = (await api.get(f"{TRUNKS}/{registered['id']}/status")).json()
    finally:
        gateway.sip = runtime
    assert status["registrationStatus"] == "REGISTERED" and status["activeCalls"] == 3

    disabled = await api.post(f"{TRUNKS}/{static['id']}/status", json={"adminStatus": "DISABLED"})
    assert disabled.status_code == 200 and disabled.json() == {"adminStatus": "DISABLED"}
    assert (await api.get(f"{TRUNKS}/{static['id']}/status")).json()["adminStatus"] == "DISABLED"
    assert not gateway.sip_trunks.get(static["id"]).enabled
    enabled = await api.post(f"{TRUNKS}/{static['id']}/status", json={"adminStatus": "ENABLED"})
    assert enabled.json() == {"adminStatus": "ENABLED"}

    for body in ({"adminStatus": "SYSTEM_DISABLED"}, {"adminStatus": "ON"}, {}):
        bad = await api.post(f"{TRUNKS}/{static['id']}/status", json=body)
        assert "adminStatus" in error_fields(bad)
    static_reset = await api.post(f"{TRUNKS}/{static['id']}/reset-password")
    assert "type" in error_fields(static_reset)


async def unknown_ids(api: httpx.AsyncClient, _gateway: Gateway) -> None:
    path = f"{TRUNKS}/0123456789abcdef01234567"
    update = {"type": "STATIC", "name": "x", "sourceHosts": ["10.0.0.1"]}
    for method, url, body in [
        ("GET", path, None),
        ("PUT", path, update),
        ("DELETE", path, None),
        ("POST", f"{path}/reset-password", None),
        ("GET", f"{path}/status", None),
        ("POST", f"{path}/status", {"adminStatus": "ENABLED"}),
    ]:
        response = await api.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["requestError"]["serviceException"]["messageId"] == "NOT_FOUND"


CREATE_ERRORS: list[tuple[dict[str, Any], list[str]]] = [
    ({**STATIC, "type": "PROVIDER"}, ["type"]),
    ({**STATIC, "type": "AUTHENTICATED"}, ["type"]),
    ({**STATIC, "type": "SPECIAL"}, ["type"]),
    ({k: v for k, v in STATIC.items() if k != "type"}, ["type"]),
    ({k: v for k, v in STATIC.items() if k != "name"}, ["name"]),
    ({**STATIC, "name": "x" * 129}, ["name"]),
    ({k: v for k, v in STATIC.items() if k != "channelLimit"}, ["channelLimit"]),
    ({**STATIC, "channelLimit": 1001}, ["channelLimit"]),
    ({**STATIC, "channelLimit": 0}, ["channelLimit"]),
    ({**STATIC, "channelLimit": "10"}, ["channelLimit"]),
    ({k: v for k, v in STATIC.items() if k != "billingPackage"}, ["billingPackage"]),
    ({**STATIC, "billingPackage": {"packageType": "FREE"}}, ["billingPackage.packageType"]),
    ({**STATIC, "location": "ZAGREB"}, ["location"]),
    ({**STATIC, "codecs": ["PCMU", "OPUS"]}, ["codecs[1]"]),
    ({**STATIC, "codecs": []}, ["codecs"]),
    ({**STATIC, "dtmf": "SIP_INFO"}, ["dtmf"]),
    ({**STATIC, "fax": "G711"}, ["fax"]),
    ({**STATIC, "numberFormat": "NATIONAL"}, ["numberFormat"]),
    ({**STATIC, "anonymization": "ALL"}, ["anonymization"]),
    ({**STATIC, "strategy": "RANDOM"}, ["strategy"]),
    ({**STATIC, "tls": "yes"}, ["tls"]),
    ({**STATIC, "sipOptions": {"enabled": True, "interval": 5}}, ["sipOptions.interval"]),
    ({**STATIC, "colour": "blue"}, ["colour"]),
    ({**STATIC, "sourceHosts": [], "destinationHosts": []}, ["sourceHosts", "destinationHosts"]),
    ({**STATIC, "sourceHosts": ["10.0.0.1", "10.0.0.2:5060"]}, ["sourceHosts[1]"]),
    ({**STATIC, "sourceHosts": ["-bad-.example.com"]}, ["sourceHosts[0]"]),
    ({**STATIC, "sourceHosts": [5]}, ["sourceHosts[0]"]),
    ({**STATIC, "destinationHosts": ["pbx.example.com", "10.0.0.1"]}, ["destinationHosts[1]"]),
    ({**STATIC, "destinationHosts": ["pbx.example.com:80"]}, ["destinationHosts[0]"]),
    ({**STATIC, "destinationHosts": ["pbx.example.com:65536"]}, ["destinationHosts[0]"]),
    ({**STATIC, "destinationHosts": ["10.0.0.1:0"]}, ["destinationHosts[0]"]),
    ({**STATIC, "destinationHosts": ["a..b:5060"]}, ["destinationHosts[0]"]),
    ({**STATIC, "destinationHosts": ["1.2.3:5060"]}, ["destinationHosts[0]"]),
    ({**REGISTERED, "sourceHosts": ["10.0.0.1"]}, ["sourceHosts"]),
    ({**REGISTERED, "username": "mine"}, ["username"]),
]


async def create_errors(api: httpx.AsyncClient, _gateway: Gateway) -> None:
    for body, fields in CREATE_ERRORS:
        response = await api.post(TRUNKS, json=body)
        assert sorted(error_fields(response)) == sorted(fields), body
    for content in (b"{not json", b"[]", b""):
        response = await api.post(
            TRUNKS, content=content, headers={"Content-Type": "application/json"}
        )
        assert list(error_fields(response)) == ["body"]
    assert (await api.get(TRUNKS)).json()["paging"]["totalResults"] == 0


async def update_errors(api: httpx.AsyncClient, _gateway: Gateway) -> None:
    static = await create(api, STATIC)
    path = f"{TRUNKS}/{static['id']}"
    base = {"type": "STATIC", "name": "Static"}
    for body, fields in [
        ({**base, "tls": True}, ["tls"]),
        ({**base, "location": "BOGOTA"}, ["location"]),
        ({**base, "billingPackage": {"packageType": "METERED"}}, ["billingPackage"]),
        ({"type": "REGISTERED", "name": "Static"}, ["type"]),
        ({**base, "type": "PROVIDER"}, ["type"]),
        ({"type": "STATIC"}, ["name"]),
        ({**base, "channelLimit": 5000}, ["channelLimit"]),
        ({**base, "sourceHosts": [], "destinationHosts": []}, ["sourceHosts", "destinationHosts"]),
        ({**base, "destinationHosts": ["10.0.0.1"]}, ["destinationHosts[0]"]),
    ]:
        response = await api.put(path, json=body)
        assert sorted(error_fields(response)) == sorted(fields), body
    assert (await api.get(path)).json() == static


async def source_hosts(api: httpx.AsyncClient, gateway: Gateway) -> None:
    store: TrunkStore = gateway.sip_trunks
    first = await create(api, STATIC, sourceHosts=["pbx.example.com", "2001:db8:0::1", "10.0.0.1"])
    assert store.for_source_host("10.0.0.1").id == first["id"]
    assert store.for_source_host("2001:db8::1").id == first["id"]
    assert store.for_source_host("pbx.example.com") is None  # domains are resolved elsewhere
    assert store.for_source_host("10.0.0.2") is None

    taken = await api.post(TRUNKS, json={**STATIC, "sourceHosts": ["10.0.0.9", "10.0.0.1"]})
    assert list(error_fields(taken)) == ["sourceHosts[1]"]

    moved = {"type": "STATIC", "name": "Moved", "sourceHosts": ["10.0.0.2"]}
    assert (await api.put(f"{TRUNKS}/{first['id']}", json=moved)).status_code == 202
    assert store.for_source_host("10.0.0.1") is None
    assert store.for_source_host("10.0.0.2").id == first["id"]
    assert (await api.delete(f"{TRUNKS}/{first['id']}")).status_code == 202
    second = await create(api, STATIC, sourceHosts=["10.0.0.2"])
    assert store.for_source_host("10.0.0.2").id == second["id"]
    assert [t.id for t in store.all()] == [second["id"]]
    assert store.get(second["id"]).destinations() == [
        Destination("100.100.100.101", 5060),
        Destination("my.destination.com", None),
        Destination("my.destination.com", 0),
    ]


async def needs_the_key(api: httpx.AsyncClient, _gateway: Gateway) -> None:
    response = await api.get(TRUNKS, headers={"Authorization": "App wrong"})
    assert response.status_code == 401


Scenario = Callable[[httpx.AsyncClient, Gateway], Awaitable[None]]
SCENARIOS: list[Scenario] = [
    static_crud,
    registered_credentials,
    status_flow,
    unknown_ids,
    create_errors,
    update_errors,
    source_hosts,
    needs_the_key,
]


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_scenario(scenario: Scenario, trunks: httpx.AsyncClient, gateway: Gateway) -> None:
    await scenario(trunks, gateway)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_responses_match_the_spec(
    scenario: Scenario,
    trunks: httpx.AsyncClient,
    gateway: Gateway,
    recorded: Recorded,
    reference: Path,
) -> None:
    await scenario(trunks, gateway)
    assert recorded
    for method, path, status, body in recorded:
        voice(reference).validate(method, path, status, body, strict=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1:5060", Destination("10.0.0.1", 5060)),
        ("[2001:db8::1]:65535", Destination("2001:db8::1", 65535)),
        ("sip.example.com", Destination("sip.example.com", None)),
        ("sip.example.com:1025", Destination("sip.example.com", 1025)),
        ("pbx:0", Destination("pbx", 0)),
    ],
)
def test_parse_destination(text: str, expected: Destination) -> None:
    assert parse_destination(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.1",
        "2001:db8::1",
        "[10.0.0.1]:5060",
        "host:1024",
        "host:",
        "host:+5060",
        "a_b.com",
        "",
    ],
)
def test_parse_destination_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_destination(text)
