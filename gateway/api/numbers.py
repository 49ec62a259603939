"""``/gateway/1/numbers``: the numbers the user owns (DIDs) and the configuration each rings.

Not part of the Calls API (the cloud manages numbers elsewhere); kept under the gateway's own
prefix so that the Calls API paths stay exactly the spec's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.errors import bad_request, not_found
from gateway.core.numbering import E164
from gateway.store.configurations import ConfigurationStore, Did, DidStore

router = APIRouter(prefix="/gateway/1/numbers", tags=["numbers"])


class LinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    callsConfigurationId: Annotated[str, Field(min_length=1, max_length=128)]


async def _stores(request: Request) -> tuple[DidStore, ConfigurationStore]:
    gateway = request.app.state.gateway
    return gateway.dids, gateway.configurations


Stores = Annotated[tuple[DidStore, ConfigurationStore], Depends(_stores)]


@router.get("")
async def list_numbers(stores: Stores) -> dict[str, Any]:
    return {"results": [did.as_json() for did in stores[0].all()]}


@router.get("/{number}")
async def get_number(number: str, stores: Stores) -> dict[str, str]:
    did = stores[0].get(number.lstrip("+"))
    if did is None:
        raise not_found("Number", number)
    return did.as_json()


@router.put("/{number}")
async def link_number(number: str, body: LinkBody, stores: Stores) -> dict[str, str]:
    dids, configurations = stores
    if not E164.match(number):
        raise bad_request("number", "must be an E.164 number such as 441134960100")
    if not configurations.exists(body.callsConfigurationId):
        raise bad_request(
            "callsConfigurationId",
            f"calls configuration {body.callsConfigurationId!r} does not exist",
        )
    return dids.link(Did(number.lstrip("+"), body.callsConfigurationId)).as_json()


@router.delete("/{number}")
async def unlink_number(number: str, stores: Stores) -> dict[str, str]:
    did = stores[0].unlink(number.lstrip("+"))
    if did is None:
        raise not_found("Number", number)
    return did.as_json()
