"""``/calls/1/configurations``: calls configurations, the key that routes events to webhooks."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.errors import ApiError, not_found
from gateway.api.paging import Page, page_params
from gateway.store.configurations import CallsConfiguration, ConfigurationStore, DuplicateId

router = APIRouter(prefix="/calls/1/configurations", tags=["configurations"])


class ConfigurationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str | None, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_-]*$")] = (
        None
    )
    name: Annotated[str | None, Field(min_length=1, max_length=128)] = None


class ConfigurationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=128)]


async def _store(request: Request) -> ConfigurationStore:
    return request.app.state.gateway.configurations


Store = Annotated[ConfigurationStore, Depends(_store)]


@router.post("", status_code=201)
async def create_configuration(body: ConfigurationCreate, store: Store) -> dict:
    config = CallsConfiguration(body.id or uuid.uuid4().hex[:24], body.name)
    try:
        return store.create(config).as_json()
    except DuplicateId:
        raise ApiError(
            400, f"Calls configuration {config.id!r} already exists.", {"id": ["already exists"]}
        ) from None


@router.get("")
async def list_configurations(store: Store, page: Annotated[Page, Depends(page_params)]) -> dict:
    configs, total = store.page(page.offset, page.size)
    return page.envelope([c.as_json() for c in configs], total)


@router.get("/{config_id}")
async def get_configuration(config_id: str, store: Store) -> dict:
    config = store.get(config_id)
    if config is None:
        raise not_found("Calls configuration", config_id)
    return config.as_json()


@router.put("/{config_id}")
async def update_configuration(config_id: str, body: ConfigurationUpdate, store: Store) -> dict:
    config = store.rename(config_id, body.name)
    if config is None:
        raise not_found("Calls configuration", config_id)
    return config.as_json()


@router.delete("/{config_id}")
async def delete_configuration(config_id: str, store: Store) -> dict:
    config = store.delete(config_id)
    if config is None:
        raise not_found("Calls configuration", config_id)
    return config.as_json()
