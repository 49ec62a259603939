"""Subscriptions API: CRUD, filters, the overlap rule and validation.

Every response is checked against Infobip's Subscriptions OpenAPI file (strictly: no member the
spec does not declare) by a hook on the test client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.api import errors
from gateway.api.subscriptions import MASK, router
from gateway.settings import Settings
from gateway.store.db import Database, metadata
from gateway.store.subscriptions import profiles_table, security_table, subscriptions_table
from tests.contract import OpenApiContract, subscriptions

BASE = "/subscriptions/1/subscription/VOICE_VIDEO"


def validation_errors(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.text
    return response.json()["requestError"]["serviceException"]["validationErrors"]


def subscription(
    subscription_id: str = "calls-sub-1",
    events: list[str] | None = None,
    config: str | None = "dc5942707c704551a00cd2ea",
    **extra: Any,
) -> dict[str, Any]:
    """A create request as in the reference's example; ``extra`` replaces top-level fields."""
    body: dict[str, Any] = {
        "subscriptionId": subscription_id,
        "name": "openai_tutorial",
        "events": events or ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED", "CALL_FAILED"],
        "profile": {
            "profileId": f"{subscription_id}-profile",
            "webhook": {"notifyUrl": "https://example.ngrok-free.app/webhook"},
            "security": {
                "authId": f"{subscription_id}-auth",
                "type": "BASIC",
                "credentials": {"username": "user1", "password": "password1"},
            },
        },
    }
    if config is not None:
        body["criteria"] = [{"callsConfigurationId": config}]
    return body | extra


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'gateway.sqlite3'}")
    metadata.create_all(
        database.engine, tables=[security_table, profiles_table, subscriptions_table]
    )
    yield database
    database.close()


@pytest.fixture
async def client(db: Database, reference: Path) -> AsyncIterator[httpx.AsyncClient]:
    contract: OpenApiContract = subscriptions(reference)

    async def conforms(response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        body = response.json() if response.content else None
        contract.validate(request.method, request.url.path, response.status_code, body, strict=True)

    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    app.state.gateway = SimpleNamespace(db=db, settings=Settings(), webhooks=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        event_hooks={"response": [conforms]},
    ) as http:
        yield http


async def test_create_get_update_delete(client: httpx.AsyncClient) -> None:
    created = await client.post(BASE, json=subscription())
    assert created.status_code == 201
    assert created.json() == {
        "subscriptionId": "calls-sub-1",
        "profile": {"profileId": "calls-sub-1-profile", "security": {"authId": "calls-sub-1-auth"}},
    }

    fetched = await client.get(f"{BASE}/calls-sub-1")
    assert fetched.status_code == 200
    assert fetched.json() == {
        "subscriptionId": "calls-sub-1",
        "name": "openai_tutorial",
        "profile": {"profileId": "calls-sub-1-profile", "security": {"authId": "calls-sub-1-auth"}},
        "events": ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED", "CALL_FAILED"],
        "criteria": [{"callsConfigurationId": "dc5942707c704551a00cd2ea"}],
        "resources": [],
        "users": [],
    }

    update = {
        "name": "renamed",
        "profile": {"profileId": "calls-sub-1-profile"},
        "events": ["CALL_FINISHED"],
        "criteria": [{"applicationId": "app-1", "callsConfigurationId": "conf-2"}],
        "users": ["user1"],
    }
    updated = await client.put(f"{BASE}/calls-sub-1", json=update)
    assert updated.status_code == 200
    assert updated.json()["subscriptionId"] == "calls-sub-1"
    fetched = (await client.get(f"{BASE}/calls-sub-1")).json()
    assert fetched["name"] == "renamed"
    assert fetched["events"] == ["CALL_FINISHED"]
    assert fetched["criteria"] == [{"applicationId": "app-1", "callsConfigurationId": "conf-2"}]
    assert fetched["users"] == ["user1"]

    deleted = await client.delete(f"{BASE}/calls-sub-1")
    assert deleted.status_code == 200
    assert deleted.json()["subscriptionId"] == "calls-sub-1"
    gone = await client.get(f"{BASE}/calls-sub-1")
    assert gone.status_code == 404
    assert gone.json()["requestError"]["serviceException"]["messageId"] == ("NOT_FOUND")


async def test_list_filters_and_paging(client: httpx.AsyncClient) -> None:
    bodies = [
        subscription("a", ["CALL_RECEIVED"], "conf-1", users=["alice"]),
        subscription("b", ["CALL_RECEIVED"], "conf-2", resources=["41793026834"]),
        subscription(
            "c",
            ["CALL_FINISHED"],
            None,
            criteria=[{"applicationId": "app-1", "callsConfigurationId": "conf-3"}],
        ),
    ]
    for body in bodies:
        assert (await client.post(BASE, json=body)).status_code == 201

    async def ids(**params: Any) -> list[str]:
        page = (await client.get(BASE, params=params)).json()
        return [item["subscriptionId"] for item in page["results"]]

    assert await ids() == ["c", "b", "a"]  # newest first
    assert await ids(callsConfigurationId="conf-2") == ["b"]
    assert await ids(applicationId="app-1") == ["c"]
    assert await ids(user="alice") == ["a"]
    assert await ids(resource="41793026834") == ["b"]
    assert await ids(applicationId="app-1", callsConfigurationId="conf-1") == []
    assert await ids(entityId="nobody") == []

    second = (await client.get(BASE, params={"size": 2, "page": 1})).json()
    assert [item["subscriptionId"] for item in second["results"]] == ["a"]
    assert second["paging"] == {"page": 1, "size": 2, "totalPages": 2, "totalResults": 3}


async def test_overlapping_events_on_a_shared_configuration_are_refused(
    client: httpx.AsyncClient,
) -> None:
    first = subscription("first", ["CALL_RECEIVED", "CALL_FINISHED"], "conf-1")
    assert (await client.post(BASE, json=first)).status_code == 201

    clash = await client.post(
        BASE,
        json=subscription("second", ["CALL_FINISHED", "CALL_FAILED", "CALL_RECEIVED"], "conf-1"),
    )
    messages = validation_errors(clash)["events"]
    assert "CALL_FINISHED, CALL_RECEIVED" in messages[0]
    assert "first" in messages[0]
    assert "CALL_FAILED" not in messages[0]
    text = clash.json()["requestError"]["serviceException"]["text"]
    assert "CALL_FINISHED" in text and "CALL_RECEIVED" in text
    # The refused request's nested profile and security were rolled back with it.
    assert (await client.get("/subscriptions/1/profiles/second-profile")).status_code == 404
    assert (await client.get("/subscriptions/1/security/second-auth")).status_code == 404

    # Disjoint events on the same configuration, or the same events elsewhere, are fine.
    disjoint = subscription("disjoint", ["CALL_FAILED"], "conf-1")
    assert (await client.post(BASE, json=disjoint)).status_code == 201
    elsewhere = subscription("elsewhere", ["CALL_RECEIVED"], "conf-2")
    assert (await client.post(BASE, json=elsewhere)).status_code == 201

    # No criteria covers every configuration.
    everywhere = await client.post(BASE, json=subscription("everywhere", ["CALL_FAILED"], None))
    assert "disjoint" in validation_errors(everywhere)["events"][0]

    # An update is held to the same rule, but never clashes with itself.
    update = {"profile": {"profileId": "elsewhere-profile"}, "events": ["CALL_RECEIVED"]}
    assert (
        "first"
        in validation_errors(await client.put(f"{BASE}/elsewhere", json=update))["events"][0]
    )
    update["criteria"] = [{"callsConfigurationId": "conf-2"}]
    assert (await client.put(f"{BASE}/elsewhere", json=update)).status_code == 200


async def test_only_voice_video_is_served(client: httpx.AsyncClient) -> None:
    sms = await client.post("/subscriptions/1/subscription/SMS", json=subscription())
    assert "channel" in validation_errors(sms)
    assert "channel" in validation_errors(await client.get("/subscriptions/1/subscription/NOPE"))


async def test_unknown_events_are_named(client: httpx.AsyncClient) -> None:
    response = await client.post(
        BASE, json=subscription(events=["CALL_RECEIVED", "DTMF_COLLECTED"])
    )
    assert "DTMF_COLLECTED" in validation_errors(response)["events"][0]
    missing = subscription()
    del missing["events"]
    assert validation_errors(await client.post(BASE, json=missing)) == {
        "events": ["must not be null"]
    }


async def test_duplicate_id_and_unknown_ids(client: httpx.AsyncClient) -> None:
    assert (await client.post(BASE, json=subscription())).status_code == 201
    again = subscription(config="conf-other")
    again["profile"] = {"profileId": "calls-sub-1-profile"}
    assert "subscriptionId" in validation_errors(await client.post(BASE, json=again))

    update = {"profile": {"profileId": "calls-sub-1-profile"}, "events": ["CALL_FAILED"]}
    for response in (
        await client.get(f"{BASE}/nope"),
        await client.put(f"{BASE}/nope", json=update),
        await client.delete(f"{BASE}/nope"),
        await client.get("/subscriptions/1/profiles/nope"),
        await client.get("/subscriptions/1/security/nope"),
        await client.delete("/subscriptions/1/security/nope"),
    ):
        assert response.status_code == 404, response.request.url


async def test_profile_and_security_references(client: httpx.AsyncClient) -> None:
    by_reference = subscription()
    by_reference["profile"] = {"profileId": "shared"}
    assert "profile.profileId" in validation_errors(await client.post(BASE, json=by_reference))

    profile = {
        "profileId": "shared",
        "webhook": {
            "notifyUrl": "https://hooks.example.com/calls",
            "contentType": "application/json",
        },
        "security": {"authId": "hmac-1", "type": "HMAC", "credentials": {"secretKey": "s3cret"}},
        "headers": {"X-Tenant": "t1"},
        "connectTimeout": 1000,
        "maxBucketSize": 1,
    }
    created = await client.post("/subscriptions/1/profiles", json=profile)
    assert created.status_code == 201
    assert created.json() == {
        "profileId": "shared",
        "security": {"authId": "hmac-1"},
    }
    assert (await client.post(BASE, json=by_reference)).status_code == 201

    fetched = (await client.get("/subscriptions/1/profiles/shared")).json()
    assert fetched == {
        "profileId": "shared",
        "webhook": {
            "notifyUrl": "https://hooks.example.com/calls",
            "contentType": "application/json",
        },
        "security": {"authId": "hmac-1"},
        "headers": {"X-Tenant": "t1"},
        "connectTimeout": 1000,
        "maxBucketSize": 1,
    }
    security = (await client.get("/subscriptions/1/security/hmac-1")).json()
    assert security == {
        "authId": "hmac-1",
        "type": "HMAC",
        "credentials": {"secretKey": MASK, "algorithm": "HMAC_SHA_256"},
    }

    # A profile update keeps what it does not name.
    moved = {"webhook": {"notifyUrl": "https://hooks.example.com/v2"}}
    assert (await client.put("/subscriptions/1/profiles/shared", json=moved)).status_code == 200
    fetched = (await client.get("/subscriptions/1/profiles/shared")).json()
    assert fetched["webhook"] == {"notifyUrl": "https://hooks.example.com/v2"}
    assert fetched["headers"] == {"X-Tenant": "t1"}
    assert fetched["security"] == {"authId": "hmac-1"}

    # Nothing in use can be deleted.
    busy_profile = await client.delete("/subscriptions/1/profiles/shared")
    assert "calls-sub-1" in validation_errors(busy_profile)["profileId"][0]
    assert "authId" in validation_errors(await client.delete("/subscriptions/1/security/hmac-1"))
    assert (await client.delete(f"{BASE}/calls-sub-1")).status_code == 200
    assert (await client.delete("/subscriptions/1/profiles/shared")).status_code == 200
    assert (await client.delete("/subscriptions/1/security/hmac-1")).json() == {"authId": "hmac-1"}


async def test_security_validation_and_masking(client: httpx.AsyncClient) -> None:
    def with_security(security: dict[str, Any]) -> dict[str, Any]:
        body = subscription()
        body["profile"]["security"] = security
        return body

    oauth = {
        "authId": "oauth",
        "type": "OAUTH",
        "credentials": {"tokenUrl": "https://auth.example.com", "grantType": "client_credentials"},
    }
    refused = validation_errors(await client.post(BASE, json=with_security(oauth)))
    assert "not supported" in refused["profile.security.type"][0]
    no_password = {"authId": "basic", "type": "BASIC", "credentials": {"username": "u"}}
    refused = validation_errors(await client.post(BASE, json=with_security(no_password)))
    assert refused == {"profile.security.credentials.password": ["must not be null"]}
    bad_algorithm = {
        "authId": "h",
        "type": "HMAC",
        "credentials": {"secretKey": "k", "algorithm": "X"},
    }
    refused = validation_errors(await client.post(BASE, json=with_security(bad_algorithm)))
    assert list(refused) == ["profile.security.credentials.algorithm"]

    assert (await client.post(BASE, json=subscription())).status_code == 201
    listed = await client.get("/subscriptions/1/security")
    page = listed.json()
    assert page["results"][0]["credentials"] == {"username": "user1", "password": MASK}
    assert "password1" not in listed.text

    rotated = {"type": "BASIC", "credentials": {"username": "user2", "password": "password2"}}
    response = await client.put("/subscriptions/1/security/calls-sub-1-auth", json=rotated)
    assert response.json() == {"authId": "calls-sub-1-auth"}
    fetched = await client.get("/subscriptions/1/security/calls-sub-1-auth")
    assert fetched.json()["credentials"]["username"] == "user2"
    assert "password2" not in fetched.text


async def test_webhook_fields_are_checked(client: httpx.AsyncClient) -> None:
    body = subscription()
    body["profile"]["webhook"] = {"notifyUrl": "ftp://example.com/x"}
    assert "profile.webhook.notifyUrl" in validation_errors(await client.post(BASE, json=body))
    body["profile"]["webhook"] = {"notifyUrl": "https://example.com/x", "contentType": "text/xml"}
    assert "profile.webhook.contentType" in validation_errors(await client.post(BASE, json=body))
    del body["profile"]["webhook"]
    assert "profile.webhook" in validation_errors(await client.post(BASE, json=body))
