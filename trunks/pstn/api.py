"""``/pstn/1/...``: the simulator's own API, apart from the Calls API paths.

``GET/POST /pstn/1/numbers`` list and add simulated numbers; ``POST /pstn/1/calls`` makes a
simulated caller dial a number; ``GET /pstn/1/calls/{callId}`` shows what a simulated phone did;
``POST /pstn/1/calls/{callId}/hangup`` makes it hang up.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.errors import ApiError, bad_request
from gateway.core.calls import NotRouted, WrongState
from gateway.core.numbering import E164
from trunks.pstn.numbers import InvalidNumber, SimulatedNumber
from trunks.pstn.simulator import SimulatedPstn

router = APIRouter(prefix="/pstn/1", tags=["simulated PSTN"])


class NumberBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str
    behaviour: str
    options: dict[str, Any] = Field(default_factory=dict)


class DialBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: Annotated[str, Field(alias="from")]
    to: str


async def _pstn(request: Request) -> SimulatedPstn:
    return request.app.state.gateway.pstn


Pstn = Annotated[SimulatedPstn, Depends(_pstn)]


@router.get("/numbers")
async def list_numbers(pstn: Pstn) -> dict[str, Any]:
    return {"results": [number.as_json() for number in pstn.numbers()]}


@router.post("/numbers", status_code=201)
async def add_number(body: NumberBody, pstn: Pstn) -> dict[str, Any]:
    try:
        number = SimulatedNumber.build(body.number, body.behaviour, body.options)
    except InvalidNumber as error:
        raise bad_request(error.field_name, error.message) from None
    pstn.add_number(number)
    return number.as_json()


@router.post("/calls", status_code=201)
async def dial(body: DialBody, pstn: Pstn) -> dict[str, Any]:
    for name, value in (("from", body.from_), ("to", body.to)):
        if not E164.match(value):
            raise bad_request(name, "must be an E.164 number such as 441134960100")
    try:
        call = pstn.place_call(body.from_.lstrip("+"), body.to)
    except NotRouted as error:
        raise ApiError(404, f"The call was refused: {error}.") from None
    return call.as_json()


@router.get("/calls/{call_id}")
async def get_simulated_call(call_id: str, pstn: Pstn) -> dict[str, Any]:
    try:
        return pstn.get_call(call_id).as_json()
    except KeyError:
        raise ApiError(404, f"Simulated call {call_id!r} was not found.") from None


@router.post("/calls/{call_id}/hangup")
async def hang_up_phone(call_id: str, pstn: Pstn) -> dict[str, Any]:
    try:
        return pstn.hang_up_phone(call_id).as_json()
    except KeyError:
        raise ApiError(404, f"Simulated call {call_id!r} was not found.") from None
    except WrongState as error:
        raise ApiError(400, str(error)) from None
