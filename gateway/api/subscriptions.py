"""Subscriptions API (``/subscriptions/1``): which Calls API events go to which webhook.

Only channel VOICE_VIDEO is served. Events of one calls configuration go to one subscription:
subscriptions whose criteria can match the same event (a subscription without criteria matches
every one) must name disjoint events. Secrets are write-only: security settings come back with
``password`` and ``secretKey`` masked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from gateway.api.errors import bad_request, not_found
from gateway.api.paging import Page, page_params
from gateway.store.db import Database
from gateway.store.subscriptions import (
    BASIC,
    HMAC,
    VOICE_VIDEO,
    VOICE_VIDEO_EVENTS,
    Criterion,
    Profile,
    Security,
    Subscription,
    SubscriptionRepository,
    overlapping,
)
from gateway.webhooks.signing import DEFAULT_HMAC_ALGORITHM, HMAC_ALGORITHMS

router = APIRouter(prefix="/subscriptions/1", tags=["subscriptions"])

MASK = "********"
_SECRETS = ("password", "secretKey")
_CREDENTIALS = {BASIC: ("username", "password"), HMAC: ("secretKey", "algorithm")}


class GatewayServices(Protocol):
    """What these handlers use of ``app.state.gateway``."""

    db: Database


def gateway_services(request: Request) -> GatewayServices:
    return request.app.state.gateway


Services = Annotated[GatewayServices, Depends(gateway_services)]


@contextmanager
def _repository(services: GatewayServices) -> Iterator[SubscriptionRepository]:
    """One transaction per request: an ``ApiError`` raised inside rolls every write back."""
    with services.db.begin() as conn:
        yield SubscriptionRepository(conn)


def _channel(channel: str) -> str:
    if channel != VOICE_VIDEO:
        raise bad_request("channel", f"{channel} is not served; only VOICE_VIDEO is")
    return channel


Channel = Annotated[str, Depends(_channel)]


# Request bodies, named after the spec's schemas.

UrlSafeId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._~-]+$")]
Text = Annotated[str, Field(max_length=255)]
HmacAlgorithm = StrEnum("HmacAlgorithm", [(name, name) for name in HMAC_ALGORITHMS])


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")


class ApplicationEntityPair(_Body):
    application_id: Text | None = None
    entity_id: Text | None = None
    calls_configuration_id: Text | None = None

    def criterion(self) -> Criterion:
        return Criterion(
            self.application_id or None, self.entity_id or None, self.calls_configuration_id or None
        )


class Credentials(_Body):
    """BASIC or HMAC credentials; unknown (OAUTH) fields are ignored so ``type`` says why."""

    model_config = ConfigDict(alias_generator=to_camel, extra="ignore")

    username: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    password: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    secret_key: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    algorithm: HmacAlgorithm | None = None


class NoIdSecurityRequest(_Body):
    type: Literal["BASIC", "HMAC", "OAUTH", "CUSTOM"] | None = None
    credentials: Credentials | None = None


class SecurityRequest(NoIdSecurityRequest):
    auth_id: UrlSafeId


class IdOnlySecurityRequest(_Body):
    auth_id: UrlSafeId


class Webhook(_Body):
    notify_url: Annotated[str, Field(max_length=512)]
    content_type: Text | None = None

    @field_validator("notify_url")
    @classmethod
    def _absolute_http(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http or https URL")
        return url

    @field_validator("content_type")
    @classmethod
    def _json(cls, value: str | None) -> str | None:
        if value and value.split(";")[0].strip().lower() != "application/json":
            raise ValueError("must be application/json: events are sent as JSON")
        return value or None


# Profile fields kept and echoed, not acted on (see gateway.store.subscriptions).
_OPTIONS = {
    "client_certificate_id",
    "max_bucket_size",
    "window_size",
    "enabled_ssl_protocols",
    "response_regex",
    "response_body_regex",
    "rate_limit",
}


class _ProfileFields(_Body):
    webhook: Webhook | None = None
    client_certificate_id: Text | None = None
    max_bucket_size: Annotated[int, Field(ge=1, le=2000)] | None = None
    window_size: Annotated[int, Field(ge=20, le=10000)] | None = None
    connect_timeout: Annotated[int, Field(ge=300, le=30000)] | None = None
    read_timeout: Annotated[int, Field(ge=1000, le=90000)] | None = None
    enabled_ssl_protocols: list[Literal["TLSv1.2", "TLSv1.3"]] | None = Field(
        None, alias="enabledSSLProtocols"
    )
    headers: dict[str, str] | None = None
    response_regex: str | None = None
    response_body_regex: str | None = None
    rate_limit: Annotated[int, Field(ge=1, le=5000)] | None = None


class ProfileRequest(_ProfileFields):
    profile_id: UrlSafeId
    security: SecurityRequest | None = None


class NoIdProfileRequest(_ProfileFields):
    security: IdOnlySecurityRequest | None = None


class IdOnlyProfileRequest(_Body):
    profile_id: UrlSafeId


class _SubscriptionFields(_Body):
    name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    events: Annotated[list[str], Field(max_length=255)]
    criteria: Annotated[list[ApplicationEntityPair], Field(max_length=255)] | None = None
    resources: Annotated[list[Text], Field(max_length=255)] | None = None
    users: Annotated[list[Text], Field(max_length=255)] | None = None

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        unknown = [name for name in events if name not in VOICE_VIDEO_EVENTS]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not in SimpleVoiceVideoEvents")
        return list(dict.fromkeys(events))

    def subscription(self, subscription_id: str, profile_id: str, channel: str) -> Subscription:
        return Subscription(
            subscription_id=subscription_id,
            profile_id=profile_id,
            events=tuple(self.events),
            criteria=tuple(pair.criterion() for pair in self.criteria or ()),
            name=self.name,
            resources=tuple(self.resources or ()),
            users=tuple(self.users or ()),
            channel=channel,
        )


class VoiceVideoSubscriptionRequest(_SubscriptionFields):
    subscription_id: UrlSafeId
    profile: ProfileRequest


class VoiceVideoNoIdSubscriptionRequest(_SubscriptionFields):
    profile: IdOnlyProfileRequest


# Responses, as plain dicts in the spec's shapes.


def _security_response(security: Security) -> dict[str, Any]:
    credentials = {
        name: MASK if name in _SECRETS else value for name, value in security.credentials.items()
    }
    return {"authId": security.auth_id, "type": security.type, "credentials": credentials}


def _profile_response(profile: Profile) -> dict[str, Any]:
    webhook = {"notifyUrl": profile.notify_url}
    if profile.content_type:
        webhook["contentType"] = profile.content_type
    view: dict[str, Any] = {"profileId": profile.profile_id, "webhook": webhook}
    if profile.auth_id:
        view["security"] = {"authId": profile.auth_id}
    if profile.connect_timeout is not None:
        view["connectTimeout"] = profile.connect_timeout
    if profile.read_timeout is not None:
        view["readTimeout"] = profile.read_timeout
    if profile.headers:
        view["headers"] = profile.headers
    return view | profile.options


def _id_only_profile(repo: SubscriptionRepository, profile_id: str) -> dict[str, Any]:
    profile = repo.profile(profile_id)
    view: dict[str, Any] = {"profileId": profile_id}
    if profile and profile.auth_id:
        view["security"] = {"authId": profile.auth_id}
    return view


def _id_only_subscription(repo: SubscriptionRepository, sub: Subscription) -> dict[str, Any]:
    return {
        "subscriptionId": sub.subscription_id,
        "profile": _id_only_profile(repo, sub.profile_id),
    }


def _subscription_response(repo: SubscriptionRepository, sub: Subscription) -> dict[str, Any]:
    view = _id_only_subscription(repo, sub)
    if sub.name is not None:
        view["name"] = sub.name
    return view | {
        "events": list(sub.events),
        "criteria": [c.as_dict() for c in sub.criteria],
        "resources": list(sub.resources),
        "users": list(sub.users),
    }


# Checks and builders shared by the nested and the top-level resources.


def _at(prefix: str, name: str) -> str:
    """A field's name in validationErrors, e.g. ``profile.security.type``."""
    return f"{prefix}.{name}" if prefix else name


def _checked_security(auth_id: str, body: NoIdSecurityRequest, prefix: str) -> Security:
    if body.type is None:
        raise bad_request(_at(prefix, "type"), "must not be null")
    if body.type not in _CREDENTIALS:
        raise bad_request(_at(prefix, "type"), f"{body.type} is not supported; use BASIC or HMAC")
    if body.credentials is None:
        raise bad_request(_at(prefix, "credentials"), "must not be null")
    given = body.credentials.model_dump(mode="json", by_alias=True, exclude_none=True)
    if body.type == HMAC:
        given.setdefault("algorithm", DEFAULT_HMAC_ALGORITHM)
    for name in _CREDENTIALS[body.type]:
        if name not in given:
            raise bad_request(_at(prefix, f"credentials.{name}"), "must not be null")
    return Security(auth_id, body.type, {name: given[name] for name in _CREDENTIALS[body.type]})


def _new_security(repo: SubscriptionRepository, body: SecurityRequest, prefix: str) -> Security:
    if repo.security(body.auth_id):
        raise bad_request(_at(prefix, "authId"), "already exists; give only authId to reuse it")
    security = _checked_security(body.auth_id, body, prefix)
    repo.save_security(security)
    return security


def _existing_security(repo: SubscriptionRepository, auth_id: str, field: str) -> Security:
    security = repo.security(auth_id)
    if security is None:
        raise bad_request(field, f"{auth_id!r} does not exist")
    return security


def _security_for(repo: SubscriptionRepository, body: SecurityRequest, prefix: str) -> str:
    """The id of the security settings a profile refers to (by id alone) or defines anew."""
    if body.model_fields_set == {"auth_id"}:
        return _existing_security(repo, body.auth_id, _at(prefix, "authId")).auth_id
    return _new_security(repo, body, prefix).auth_id


def _checked_profile(
    profile_id: str, body: _ProfileFields, auth_id: str | None, prefix: str
) -> Profile:
    if body.webhook is None:
        raise bad_request(_at(prefix, "webhook"), "must not be null")
    return Profile(
        profile_id=profile_id,
        notify_url=body.webhook.notify_url,
        content_type=body.webhook.content_type,
        headers=body.headers or {},
        connect_timeout=body.connect_timeout,
        read_timeout=body.read_timeout,
        auth_id=auth_id,
        options=body.model_dump(by_alias=True, include=_OPTIONS, exclude_none=True),
    )


def _new_profile(repo: SubscriptionRepository, body: ProfileRequest, prefix: str) -> Profile:
    if repo.profile(body.profile_id):
        raise bad_request(
            _at(prefix, "profileId"), "already exists; give only profileId to reuse it"
        )
    auth_id = _security_for(repo, body.security, _at(prefix, "security")) if body.security else None
    profile = _checked_profile(body.profile_id, body, auth_id, prefix)
    repo.save_profile(profile)
    return profile


def _existing_profile(repo: SubscriptionRepository, profile_id: str, field: str) -> Profile:
    profile = repo.profile(profile_id)
    if profile is None:
        raise bad_request(field, f"{profile_id!r} does not exist")
    return profile


def _profile_for(repo: SubscriptionRepository, body: ProfileRequest, prefix: str) -> Profile:
    """The profile a subscription refers to (by id alone) or defines anew."""
    if body.model_fields_set == {"profile_id"}:
        return _existing_profile(repo, body.profile_id, _at(prefix, "profileId"))
    return _new_profile(repo, body, prefix)


def _check_overlap(repo: SubscriptionRepository, subscription: Subscription) -> None:
    clashes = overlapping(subscription, repo.subscriptions(subscription.channel))
    if clashes:
        events = ", ".join(sorted(set().union(*clashes.values())))
        owners = ", ".join(sorted(clashes))
        raise bad_request(
            "events",
            f"{events} are already routed to subscription {owners} for an overlapping"
            " calls configuration",
        )


T = TypeVar("T")


def _found(item: T | None, kind: str, ident: str) -> T:
    if item is None:
        raise not_found(kind, ident)
    return item


# Subscriptions.


@router.post("/subscription/{channel}", status_code=201)
async def create_subscription(
    channel: Channel, body: VoiceVideoSubscriptionRequest, services: Services
) -> dict[str, Any]:
    with _repository(services) as repo:
        if repo.subscription(body.subscription_id):
            raise bad_request("subscriptionId", "already exists")
        profile = _profile_for(repo, body.profile, "profile")
        subscription = body.subscription(body.subscription_id, profile.profile_id, channel)
        _check_overlap(repo, subscription)
        repo.save_subscription(subscription)
        return _id_only_subscription(repo, subscription)


@router.get("/subscription/{channel}")
async def list_subscriptions(
    channel: Channel,
    services: Services,
    page: Annotated[Page, Depends(page_params)],
    application_id: Annotated[list[str] | None, Query(alias="applicationId")] = None,
    entity_id: Annotated[list[str] | None, Query(alias="entityId")] = None,
    calls_configuration_id: Annotated[list[str] | None, Query(alias="callsConfigurationId")] = None,
    resource: Annotated[list[str] | None, Query()] = None,
    user: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    """Filters combine with AND, a repeated filter too: each value given must be present."""

    def wanted(sub: Subscription) -> bool:
        present = [
            (application_id, {c.application_id for c in sub.criteria}),
            (entity_id, {c.entity_id for c in sub.criteria}),
            (calls_configuration_id, {c.calls_configuration_id for c in sub.criteria}),
            (resource, set(sub.resources)),
            (user, set(sub.users)),
        ]
        return all(set(values or ()) <= have for values, have in present)

    with _repository(services) as repo:
        found = [sub for sub in repo.subscriptions(channel) if wanted(sub)]
        return page.slice([_subscription_response(repo, sub) for sub in found])


@router.get("/subscription/{channel}/{subscription_id}")
async def get_subscription(
    channel: Channel, subscription_id: str, services: Services
) -> dict[str, Any]:
    with _repository(services) as repo:
        sub = _found(repo.subscription(subscription_id), "Subscription", subscription_id)
        return _subscription_response(repo, sub)


@router.put("/subscription/{channel}/{subscription_id}")
async def update_subscription(
    channel: Channel,
    subscription_id: str,
    body: VoiceVideoNoIdSubscriptionRequest,
    services: Services,
) -> dict[str, Any]:
    """A full replacement; the profile is referred to by id only."""
    with _repository(services) as repo:
        _found(repo.subscription(subscription_id), "Subscription", subscription_id)
        profile = _existing_profile(repo, body.profile.profile_id, "profile.profileId")
        subscription = body.subscription(subscription_id, profile.profile_id, channel)
        _check_overlap(repo, subscription)
        repo.save_subscription(subscription)
        return _id_only_subscription(repo, subscription)


@router.delete("/subscription/{channel}/{subscription_id}")
async def delete_subscription(
    channel: Channel, subscription_id: str, services: Services
) -> dict[str, Any]:
    """New events stop going to it; events already in the outbox are still delivered."""
    with _repository(services) as repo:
        sub = _found(repo.subscription(subscription_id), "Subscription", subscription_id)
        response = _id_only_subscription(repo, sub)
        repo.delete_subscription(subscription_id)
        return response


# Notification profiles.


@router.post("/profiles", status_code=201)
async def create_profile(body: ProfileRequest, services: Services) -> dict[str, Any]:
    with _repository(services) as repo:
        profile = _new_profile(repo, body, "")
        return _id_only_profile(repo, profile.profile_id)


@router.get("/profiles")
async def list_profiles(
    services: Services, page: Annotated[Page, Depends(page_params)]
) -> dict[str, Any]:
    with _repository(services) as repo:
        return page.slice([_profile_response(profile) for profile in repo.profiles()])


@router.get("/profiles/{profile_id}")
async def get_profile(profile_id: str, services: Services) -> dict[str, Any]:
    with _repository(services) as repo:
        return _profile_response(_found(repo.profile(profile_id), "Profile", profile_id))


@router.put("/profiles/{profile_id}")
async def update_profile(
    profile_id: str, body: NoIdProfileRequest, services: Services
) -> dict[str, Any]:
    """Fields given replace the stored ones; fields left out keep their value."""
    with _repository(services) as repo:
        current = _profile_response(_found(repo.profile(profile_id), "Profile", profile_id))
        del current["profileId"]
        given = body.model_dump(by_alias=True, exclude_unset=True)
        merged = NoIdProfileRequest.model_validate(current | given)
        auth_id = merged.security.auth_id if merged.security else None
        if auth_id:
            _existing_security(repo, auth_id, "security.authId")
        repo.save_profile(_checked_profile(profile_id, merged, auth_id, ""))
        return _id_only_profile(repo, profile_id)


@router.delete("/profiles/{profile_id}")
async def delete_profile(profile_id: str, services: Services) -> dict[str, Any]:
    with _repository(services) as repo:
        _found(repo.profile(profile_id), "Profile", profile_id)
        users = [sub.subscription_id for sub in repo.subscriptions(profile_id=profile_id)]
        if users:
            raise bad_request("profileId", f"is used by subscription {', '.join(users)}")
        response = _id_only_profile(repo, profile_id)
        repo.delete_profile(profile_id)
        return response


# Security settings.


@router.post("/security", status_code=201)
async def create_security(body: SecurityRequest, services: Services) -> dict[str, Any]:
    with _repository(services) as repo:
        return {"authId": _new_security(repo, body, "").auth_id}


@router.get("/security")
async def list_security(
    services: Services, page: Annotated[Page, Depends(page_params)]
) -> dict[str, Any]:
    with _repository(services) as repo:
        return page.slice([_security_response(security) for security in repo.securities()])


@router.get("/security/{auth_id}")
async def get_security(auth_id: str, services: Services) -> dict[str, Any]:
    with _repository(services) as repo:
        return _security_response(_found(repo.security(auth_id), "Security", auth_id))


@router.put("/security/{auth_id}")
async def update_security(
    auth_id: str, body: NoIdSecurityRequest, services: Services
) -> dict[str, Any]:
    """Type and credentials are replaced together; the credentials must be given again."""
    with _repository(services) as repo:
        _found(repo.security(auth_id), "Security", auth_id)
        repo.save_security(_checked_security(auth_id, body, ""))
        return {"authId": auth_id}


@router.delete("/security/{auth_id}")
async def delete_security(auth_id: str, services: Services) -> dict[str, Any]:
    with _repository(services) as repo:
        _found(repo.security(auth_id), "Security", auth_id)
        users = [profile.profile_id for profile in repo.profiles(auth_id=auth_id)]
        if users:
            raise bad_request("authId", f"is used by profile {', '.join(users)}")
        repo.delete_security(auth_id)
        return {"authId": auth_id}
