"""``/calls/1/sip-trunks``: the Calls API's SIP trunk resource, for STATIC and REGISTERED trunks.

Bodies are parsed here rather than by FastAPI so that errors inside the ``type``-discriminated
union name the field as the client wrote it (``destinationHosts[1]``), not the union branch.
Changes apply at once, so every trunk's last action is SUCCESS although create, update and
delete answer 202 as the cloud's asynchronous ones do.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from gateway.api.errors import ApiError, not_found
from gateway.api.paging import Page, page_params
from gateway.settings import Settings
from trunks.sip.trunk_store import (
    REGISTERED,
    BillingPackage,
    InvalidTrunk,
    SipTrunk,
    TrunkConfig,
    TrunkStore,
)

router = APIRouter(prefix="/calls/1/sip-trunks", tags=["SIP trunks"])
T = TypeVar("T")

UNSUPPORTED_TYPES = ("PROVIDER", "AUTHENTICATED")

Location = Literal[
    "SAO_PAULO",
    "BOGOTA",
    "FRANKFURT",
    "SWEDEN",
    "JOHANNESBURG",
    "NEW_YORK",
    "PORTLAND",
    "MOSCOW",
    "SINGAPORE",
    "ISTANBUL",
    "KUALA_LUMPUR",
]
Codec = Literal["PCMU", "PCMA", "G729"]
Dtmf = Literal["RFC2833", "INBAND"]
Fax = Literal["NONE", "INBAND", "T38"]
NumberFormat = Literal["E164", "INTERNATIONAL", "US_NATIONAL"]
Anonymization = Literal["NONE", "REMOTE_PARTY_ID", "ASSERTED_IDENTITY", "PREFERRED_IDENTITY"]
Strategy = Literal["FAILOVER", "ROUND_ROBIN"]
Name = Annotated[str, Field(min_length=1, max_length=128)]
ChannelLimit = Annotated[int, Field(ge=1, le=1000)]
Codecs = Annotated[list[Codec], Field(min_length=1)]


class _Body(BaseModel):
    """camelCase on the wire, exact JSON types, no unknown members."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel)


class BillingPackageBody(_Body):
    package_type: Literal["METERED", "UNLIMITED"]
    country_code: str | None = None
    address_id: str | None = None


class SipOptionsBody(_Body):
    enabled: bool = False


class _Media(_Body):
    """What both trunk types share in create and update bodies alike."""

    codecs: Codecs = ["PCMU", "PCMA"]
    dtmf: Dtmf = "RFC2833"
    fax: Fax = "NONE"
    number_format: NumberFormat = "E164"
    anonymization: Anonymization = "NONE"


class _Create(_Media):
    name: Name
    channel_limit: ChannelLimit
    billing_package: BillingPackageBody
    location: Location | None = None
    international_calls_allowed: bool = False
    tls: bool = False


class StaticCreate(_Create):
    type: Literal["STATIC"]
    source_hosts: list[str] = []
    destination_hosts: list[str] = []
    strategy: Strategy = "FAILOVER"
    sip_options: SipOptionsBody = SipOptionsBody()


class RegisteredCreate(_Create):
    type: Literal["REGISTERED"]
    invite_authentication: bool = False


class _Update(_Media):
    """The spec's update bodies: no location, billing package or TLS; members left out stay."""

    name: Name
    channel_limit: ChannelLimit | None = None
    international_calls_allowed: bool | None = None


class StaticUpdate(_Update):
    type: Literal["STATIC"]
    source_hosts: list[str] = []
    destination_hosts: list[str] = []
    strategy: Strategy = "FAILOVER"
    sip_options: SipOptionsBody = SipOptionsBody()


class RegisteredUpdate(_Update):
    type: Literal["REGISTERED"]
    invite_authentication: bool = False


class StatusBody(_Body):
    admin_status: Literal["ENABLED", "DISABLED"]


CREATE = TypeAdapter(Annotated[StaticCreate | RegisteredCreate, Field(discriminator="type")])
UPDATE = TypeAdapter(Annotated[StaticUpdate | RegisteredUpdate, Field(discriminator="type")])
STATUS = TypeAdapter(StatusBody)


def _field(error: dict[str, Any]) -> str:
    """``("STATIC", "destinationHosts", 1)`` → ``destinationHosts[1]``: the tag is not a field."""
    location = list(error["loc"])
    if location and location[0] in ("STATIC", "REGISTERED"):
        location = location[1:]
    name = ""
    for part in location:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name or "body"


def _type_error(error: dict[str, Any]) -> dict[str, Any]:
    tag = error.get("ctx", {}).get("tag")
    if tag is None:
        return {"type": "missing", "loc": ("body", "type")}
    if tag in UNSUPPORTED_TYPES:
        message = f"{tag} is not supported by this gateway"
    else:
        message = "must be one of STATIC, REGISTERED, PROVIDER, AUTHENTICATED"
    return {"type": "value_error", "loc": ("body", "type"), "msg": message}


def _parse(adapter: TypeAdapter, raw: bytes) -> Any:
    """Validate ``raw``; errors go to the shared handler, so they read as every other 400."""
    try:
        return adapter.validate_json(raw or b"null")
    except ValidationError as exc:
        errors = [
            _type_error(e)
            if e["type"] in ("union_tag_invalid", "union_tag_not_found")
            else {**e, "loc": ("body", _field(e))}
            for e in exc.errors()
        ]
        raise RequestValidationError(errors) from None


def _invalid(error: InvalidTrunk) -> ApiError:
    return ApiError(400, f"Request is invalid: {', '.join(error.errors)}.", error.errors)


def _config_fields(body: _Body, *, only_set: bool) -> dict[str, Any]:
    """Body members as :class:`TrunkConfig` keyword arguments."""
    values = body.model_dump(exclude_unset=only_set, exclude_none=only_set)
    if "billing_package" in values:
        values["billing_package"] = BillingPackage(**values["billing_package"])
    if "sip_options" in values:
        values["sip_options_enabled"] = values.pop("sip_options")["enabled"]
    for name in ("codecs", "source_hosts", "destination_hosts"):
        if name in values:
            values[name] = tuple(values[name])
    return values


def sbc_hosts(settings: Settings, tls: bool) -> dict[str, list[str]]:
    """Where a trunk reaches us: our SIP host, at the TLS port for a TLS trunk (as in the spec)."""
    host = f"[{settings.sip_host}]" if ":" in settings.sip_host else settings.sip_host
    port = settings.sip_tls_port if tls else settings.sip_port
    return {"primary": [f"{host}:{port}"], "backup": []}


def trunk_json(trunk: SipTrunk, settings: Settings) -> dict[str, Any]:
    """The SipTrunkResponse of ``trunk``: never a secret, as a GET may be logged anywhere."""
    config = trunk.config
    package = config.billing_package
    body: dict[str, Any] = {"id": trunk.id, "type": config.type, "name": config.name}
    if config.location is not None:
        body["location"] = config.location
    body |= {
        "tls": config.tls,
        "codecs": list(config.codecs),
        "dtmf": config.dtmf,
        "fax": config.fax,
        "numberFormat": config.number_format,
        "internationalCallsAllowed": config.international_calls_allowed,
        "channelLimit": config.channel_limit,
        "anonymization": config.anonymization,
        "billingPackage": {"packageType": package.package_type}
        | ({"countryCode": package.country_code} if package.country_code is not None else {})
        | ({"addressId": package.address_id} if package.address_id is not None else {}),
        "sbcHosts": sbc_hosts(settings, config.tls),
    }
    if config.type == REGISTERED:
        body |= {"username": trunk.username, "inviteAuthentication": config.invite_authentication}
    else:
        body |= {
            "sipOptions": {"enabled": config.sip_options_enabled},
            "sourceHosts": list(config.source_hosts),
            "destinationHosts": list(config.destination_hosts),
            "strategy": config.strategy,
        }
    return body


async def _store(request: Request) -> TrunkStore:
    return request.app.state.gateway.sip_trunks


async def _settings(request: Request) -> Settings:
    return request.app.state.gateway.settings


Store = Annotated[TrunkStore, Depends(_store)]
GatewaySettings = Annotated[Settings, Depends(_settings)]


def _found(found: T | None, trunk_id: str) -> T:
    if found is None:
        raise not_found("SIP trunk", trunk_id)
    return found


@router.get("")
async def list_trunks(
    store: Store,
    settings: GatewaySettings,
    page: Annotated[Page, Depends(page_params)],
    name: str | None = None,
) -> dict[str, Any]:
    trunks, total = store.page(page.offset, page.size, name)
    return page.envelope([trunk_json(trunk, settings) for trunk in trunks], total)


@router.post("", status_code=202)
async def create_trunk(request: Request, store: Store, settings: GatewaySettings) -> dict[str, Any]:
    body = _parse(CREATE, await request.body())
    try:
        trunk, password = store.create(TrunkConfig(**_config_fields(body, only_set=False)))
    except InvalidTrunk as error:
        raise _invalid(error) from None
    created = trunk_json(trunk, settings)
    if password is not None:
        created["password"] = password  # shown this once; only its HA1 values are kept
    return created


@router.get("/{trunk_id}")
async def get_trunk(trunk_id: str, store: Store, settings: GatewaySettings) -> dict[str, Any]:
    return trunk_json(_found(store.get(trunk_id), trunk_id), settings)


@router.put("/{trunk_id}", status_code=202)
async def update_trunk(
    trunk_id: str, request: Request, store: Store, settings: GatewaySettings
) -> dict[str, Any]:
    body = _parse(UPDATE, await request.body())
    current = _found(store.get(trunk_id), trunk_id)
    config = replace(current.config, **_config_fields(body, only_set=True))
    try:
        trunk = _found(store.update(trunk_id, config), trunk_id)
    except InvalidTrunk as error:
        raise _invalid(error) from None
    return trunk_json(trunk, settings)


@router.delete("/{trunk_id}", status_code=202)
async def delete_trunk(trunk_id: str, store: Store, settings: GatewaySettings) -> dict[str, Any]:
    return trunk_json(_found(store.delete(trunk_id), trunk_id), settings)


@router.post("/{trunk_id}/reset-password")
async def reset_password(trunk_id: str, store: Store) -> dict[str, Any]:
    try:
        trunk, password = _found(store.reset_password(trunk_id), trunk_id)
    except InvalidTrunk as error:
        raise ApiError(
            400, f"SIP trunk {trunk_id!r} has no password to reset.", error.errors
        ) from None
    return {"username": trunk.username, "password": password, "type": trunk.type}


def _runtime(request: Request, trunk_id: str) -> tuple[str, int]:
    """(registrationStatus, activeCalls) from the SIP runtime, once there is one."""
    probe = getattr(getattr(request.app.state.gateway, "sip", None), "trunk_runtime", None)
    return probe(trunk_id) if probe is not None else ("UNREGISTERED", 0)


@router.get("/{trunk_id}/status")
async def get_status(trunk_id: str, request: Request, store: Store) -> dict[str, Any]:
    trunk = _found(store.get(trunk_id), trunk_id)
    registration, active_calls = _runtime(request, trunk_id)
    status: dict[str, Any] = {
        "adminStatus": trunk.admin_status,
        "actionStatus": {"status": "SUCCESS"},
    }
    if trunk.type == REGISTERED:  # the spec's examples leave it out for other trunks
        status["registrationStatus"] = registration
    status["activeCalls"] = active_calls
    return status


@router.post("/{trunk_id}/status")
async def set_status(trunk_id: str, request: Request, store: Store) -> dict[str, Any]:
    body = _parse(STATUS, await request.body())
    trunk = _found(store.set_admin_status(trunk_id, body.admin_status), trunk_id)
    return {"adminStatus": trunk.admin_status}
