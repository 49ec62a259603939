"""``/pstn/1/...``: the simulator's own API, apart from the Calls API paths.

``GET/POST /pstn/1/numbers`` list and add simulated numbers; ``POST /pstn/1/calls`` makes a
simulated caller dial a number; ``GET /pstn/1/calls/{callId}`` shows what a simulated phone did;
``POST /pstn/1/calls/{callId}/hangup`` makes it hang up; ``PUT .../source`` sets what it says
and ``GET .../heard`` returns what it heard, as WAV.

``POST .../dtmf`` ``{"digits": "12w#", "mode": "inband" | "rfc4733"}`` makes the phone key
digits (0-9, *, #, A-D; ``w`` pauses 500 ms, ``W`` 1 s), each 100 ms of tone and 100 ms after
it. ``inband`` (the default: what a PSTN phone does) sends the tones in its audio, in front of
its source, which then resumes; ``rfc4733`` reports them to the platform as telephone-events.
The call must be answered or have early media. It answers 202 at once, with the call id, the
digits and the mode; the phone keys them after what it is still keying. ``GET .../dtmf`` gives
``{"received": "..."}``: the digits the platform sent it out of band (a number with the option
``dtmf: rfc4733``; other phones hear them as tones).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.errors import ApiError, bad_request
from gateway.core.calls import NotRouted, WrongState
from gateway.core.numbering import E164
from gateway.media.dtmf_sender import invalid_dtmf
from trunks.pstn.audio import SourceError
from trunks.pstn.numbers import DtmfMode, InvalidNumber, SimulatedNumber
from trunks.pstn.simulator import SimulatedCall, SimulatedPstn
from trunks.pstn.sources import InvalidSource, Source

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
    file_id = number.source.fileId if number.source else None
    if file_id is not None and not pstn.has_file(file_id):
        raise bad_request("options.source.fileId", f"no file {file_id!r} was uploaded")
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
    return _simulated(pstn, call_id).as_json()


@router.put("/calls/{call_id}/source")
async def set_source(
    call_id: str, body: Annotated[dict[str, Any], Body()], pstn: Pstn
) -> dict[str, Any]:
    """What the simulated phone sends from now on (a :class:`Source`)."""
    call = _simulated(pstn, call_id)
    try:
        source = Source.parse(body)
    except InvalidSource as error:
        raise bad_request(error.field_name, error.message) from None
    try:
        call.audio.play(await source.frames(pstn.files))
    except SourceError as error:
        raise bad_request(source.type if source.type == "text" else "fileId", str(error)) from None
    return call.as_json()


class DtmfBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digits: Annotated[str, Field(max_length=256)]
    mode: DtmfMode = DtmfMode.INBAND


@router.post("/calls/{call_id}/dtmf", status_code=202)
async def key_digits(call_id: str, body: DtmfBody, pstn: Pstn) -> dict[str, Any]:
    """The phone keys digits; they are typed after the answer, one after another."""
    reason = invalid_dtmf(body.digits)
    if reason is not None:
        raise bad_request("digits", reason)
    try:
        pstn.key_digits(call_id, body.digits, body.mode)
    except KeyError:
        raise ApiError(404, f"Simulated call {call_id!r} was not found or has ended.") from None
    except WrongState as error:
        raise ApiError(400, str(error)) from None
    return {"callId": call_id, "digits": body.digits, "mode": body.mode.value}


@router.get("/calls/{call_id}/dtmf")
async def received_digits(call_id: str, pstn: Pstn) -> dict[str, str]:
    """The digits the platform sent the phone out of band, in order."""
    return {"received": "".join(_simulated(pstn, call_id).dtmf_received)}


@router.get("/calls/{call_id}/heard")
async def heard(call_id: str, pstn: Pstn) -> Response:
    """Everything the simulated phone heard so far, as a WAV file."""
    return Response(_simulated(pstn, call_id).audio.heard_wav(), media_type="audio/wav")


def _simulated(pstn: SimulatedPstn, call_id: str) -> SimulatedCall:
    try:
        return pstn.get_call(call_id)
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
