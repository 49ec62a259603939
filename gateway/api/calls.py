"""``/calls/1/calls``: create, list, get, history, and the verbs on one call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.api.errors import ApiError, bad_request, not_found
from gateway.api.paging import Page, page_params
from gateway.api.recording_bodies import CallRecordingBody
from gateway.core.calls import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_DURATION,
    CallControl,
    CallError,
    CallNotFound,
    CallRequest,
    InvalidRequest,
    WrongState,
)
from gateway.core.errors import BY_NAME
from gateway.core.leg import Direction, LegState, MachineDetectionRequest
from gateway.core.query import LegQuery
from gateway.core.recordings import RecordingControl
from gateway.core.views import call_log_view, call_view
from gateway.timeutil import parse_time

router = APIRouter(prefix="/calls/1/calls", tags=["calls"])

EndpointType = Literal["PHONE", "SIP", "WEBRTC", "VIBER", "WHATSAPP", "WEBSOCKET"]
HangupErrorCode = Literal[
    "NORMAL_HANGUP", "MACHINE_DETECTED", "NO_ANSWER", "BUSY", "CANCELLED", "REJECTED",
    "FORBIDDEN", "DESTINATION_NOT_FOUND", "DESTINATION_UNAVAILABLE", "INVALID_DESTINATION",
    "INVALID_REQUEST", "REQUEST_TIMEOUT", "SERVICE_UNAVAILABLE",
]  # fmt: skip
CustomData = dict[str, str]


class Endpoint(BaseModel):
    """The endpoint's type; the fields of each type are checked by the adapter that serves it."""

    model_config = ConfigDict(extra="allow")
    type: EndpointType


class Platform(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entityId: Annotated[str | None, Field(max_length=255)] = None
    applicationId: Annotated[str | None, Field(max_length=255)] = None


class MachineDetection(BaseModel):
    """``MachineDetectionRequest``."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool
    messageDetectionTimeout: Annotated[int | None, Field(ge=0, le=60)] = None  # None: 0
    detectionTime: Annotated[float | None, Field(ge=1, le=5)] = None  # None: 3.7

    @model_validator(mode="after")
    def _detection_before_timeout(self) -> MachineDetection:
        asked = self.request()
        if asked and asked.message_timeout and asked.detection_time >= asked.message_timeout:
            raise ValueError(
                "detectionTime must be lower than messageDetectionTimeout "
                f"({asked.detection_time} >= {asked.message_timeout})"
            )
        return self

    def request(self) -> MachineDetectionRequest | None:
        if not self.enabled:
            return None
        defaults = MachineDetectionRequest()
        return MachineDetectionRequest(
            defaults.detection_time if self.detectionTime is None else self.detectionTime,
            self.messageDetectionTimeout or 0,
        )


def machine_detection(body: MachineDetection | None) -> MachineDetectionRequest | None:
    return body.request() if body is not None else None


class CreateCall(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    endpoint: Endpoint
    from_: Annotated[str | None, Field(alias="from", min_length=1, max_length=255)] = None
    fromDisplayName: Annotated[str | None, Field(max_length=255)] = None
    connectTimeout: Annotated[int, Field(ge=1, le=60)] = DEFAULT_CONNECT_TIMEOUT
    maxDuration: Annotated[int, Field(ge=1, le=DEFAULT_MAX_DURATION)] = DEFAULT_MAX_DURATION
    machineDetection: MachineDetection | None = None
    customData: CustomData = Field(default_factory=dict)
    callsConfigurationId: Annotated[str, Field(min_length=1, max_length=128)]
    platform: Platform | None = None
    parentCallId: Annotated[str | None, Field(max_length=128)] = None
    externalId: Annotated[str | None, Field(max_length=255)] = None
    recording: CallRecordingBody | None = None  # starts when the call is answered


class PreAnswerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customData: CustomData | None = None
    ringing: bool = False


class AnswerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customData: CustomData | None = None
    recording: CallRecordingBody | None = None  # starts with the answer


class HangupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    errorCode: HangupErrorCode | None = None


def _control(request: Request) -> CallControl:
    return request.app.state.gateway.calls


def _recordings(request: Request) -> RecordingControl:
    return request.app.state.gateway.recordings


Control = Annotated[CallControl, Depends(_control)]
Recordings = Annotated[RecordingControl, Depends(_recordings)]
PENDING = {"status": "PENDING"}


def _raise_for(error: CallError) -> ApiError:
    if isinstance(error, CallNotFound):
        return not_found("Call", error.leg_id)
    if isinstance(error, InvalidRequest):
        return ApiError(400, f"Request is invalid: {error}.", error.field_errors)
    return ApiError(400, str(error))


@router.post("", status_code=201)
async def create_call(body: CreateCall, control: Control, recordings: Recordings) -> dict[str, Any]:
    if body.from_ is None and body.endpoint.type == "VIBER":
        raise bad_request("from", "must not be null for VIBER endpoints")
    request = CallRequest(
        endpoint=body.endpoint.model_dump(),
        calls_configuration_id=body.callsConfigurationId,
        from_=body.from_,
        from_display_name=body.fromDisplayName,
        connect_timeout=body.connectTimeout,
        max_duration=body.maxDuration,
        custom_data=body.customData,
        external_id=body.externalId,
        platform=body.platform.model_dump(exclude_none=True) if body.platform else None,
        parent_call_id=body.parentCallId,
        machine_detection=machine_detection(body.machineDetection),
    )
    recording = body.recording.options() if body.recording else None
    try:
        leg = await control.create_call(
            request,
            before_start=(lambda leg: recordings.start_call_when_answered(leg, recording))
            if recording
            else None,
        )
    except CallError as error:
        raise _raise_for(error) from None
    return call_view(leg)


class CallFilters:
    """The query parameters both lists take, turned into one :class:`LegQuery`."""

    def __init__(
        self,
        type: EndpointType | None = None,
        callsConfigurationId: str | None = None,
        applicationId: str | None = None,
        from_: Annotated[str | None, Query(alias="from")] = None,
        to: str | None = None,
        direction: Direction | None = None,
        status: LegState | None = None,
        startTimeAfter: str | None = None,
        startTimeBefore: str | None = None,
        conferenceId: str | None = None,
        dialogId: str | None = None,
        bulkId: str | None = None,
    ) -> None:
        self.query = LegQuery(
            endpoint_type=type,
            calls_configuration_id=callsConfigurationId,
            application_id=applicationId,
            from_=from_,
            to=to,
            direction=direction,
            state=status,
            start_time_after=_time_param("startTimeAfter", startTimeAfter),
            start_time_before=_time_param("startTimeBefore", startTimeBefore),
            conference_id=conferenceId,
            dialog_id=dialogId,
            bulk_id=bulkId,
        )


def _time_param(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise bad_request(
            name, "must be a date-time such as 2026-01-15T11:59:30.000+0000"
        ) from None


Filters = Annotated[CallFilters, Depends()]
Paging = Annotated[Page, Depends(page_params)]


@router.get("")
async def list_calls(control: Control, filters: Filters, page: Paging) -> dict[str, Any]:
    legs, total = control.query(filters.query, page.offset, page.size)
    return page.envelope([call_view(leg) for leg in legs], total)


@router.get("/history")
async def calls_history(control: Control, filters: Filters, page: Paging) -> dict[str, Any]:
    query = filters.query
    ended = LegQuery(**{**query.__dict__, "ended": True})
    legs, total = control.query(ended, page.offset, page.size)
    return page.envelope([call_log_view(leg) for leg in legs], total)


@router.get("/{call_id}")
async def get_call(call_id: str, control: Control) -> dict[str, Any]:
    try:
        return call_view(control.get(call_id))
    except CallError as error:
        raise _raise_for(error) from None


@router.get("/{call_id}/history")
async def get_call_history(call_id: str, control: Control) -> dict[str, Any]:
    try:
        leg = control.get(call_id)
    except CallError as error:
        raise _raise_for(error) from None
    if not leg.state.is_final:
        raise ApiError(404, f"Call {call_id!r} has no history yet: it is still {leg.state}.")
    return call_log_view(leg)


@router.post("/{call_id}/send-ringing")
async def send_ringing(call_id: str, control: Control) -> dict[str, str]:
    try:
        await control.send_ringing(call_id)
    except CallError as error:
        raise _raise_for(error) from None
    return PENDING


@router.post("/{call_id}/pre-answer")
async def pre_answer(
    call_id: str, control: Control, body: Annotated[PreAnswerBody | None, Body()] = None
) -> dict[str, str]:
    try:
        await control.pre_answer(call_id, body.customData if body else None)
    except CallError as error:
        raise _raise_for(error) from None
    return PENDING


@router.post("/{call_id}/answer")
async def answer(
    call_id: str,
    control: Control,
    recordings: Recordings,
    body: Annotated[AnswerBody | None, Body()] = None,
) -> dict[str, str]:
    body = body or AnswerBody()
    try:
        if body.recording is not None:  # asked before the answer, which may come at once
            recordings.start_call_when_answered(control.get(call_id), body.recording.options())
    except CallError as error:
        raise _raise_for(error) from None
    try:
        await control.answer(call_id, body.customData)
    except CallError as error:
        if body.recording is not None:
            recordings.forget_pending_call(call_id)
        raise _raise_for(error) from None
    return PENDING


@router.post("/{call_id}/hangup")
async def hangup(
    call_id: str, control: Control, body: Annotated[HangupBody | None, Body()] = None
) -> dict[str, Any]:
    error_code = body.errorCode if body else None
    assert error_code is None or error_code in BY_NAME
    try:
        leg = await control.hangup(call_id, error_code)
    except WrongState as error:
        raise ApiError(400, str(error)) from None
    except CallError as error:
        raise _raise_for(error) from None
    return call_view(leg)
