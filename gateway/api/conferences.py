"""``/calls/1/conferences`` (create, list, get, history, add/remove/update calls, hang up) and
the two connect methods, which create a conference implicitly."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.api.calls import PENDING, CustomData, Paging, Platform, _raise_for, _time_param
from gateway.api.dialogs import ChildCallBody, RingbackBody
from gateway.api.errors import ApiError, not_found
from gateway.api.recording_bodies import ConferenceRecordingBody
from gateway.core.calls import DEFAULT_MAX_DURATION, CallError
from gateway.core.conferences import (
    Conference,
    ConferenceControl,
    ConferenceNotFound,
    ConferenceQuery,
    ConferenceSpec,
    NewCall,
    ParticipantNotFound,
    conference_log_view,
    conference_view,
)
from gateway.core.leg import Leg
from gateway.core.recordings import RecordingControl
from gateway.core.views import call_view

router = APIRouter(prefix="/calls/1", tags=["conferences"])
CONFERENCES = "/conferences"

MaxDuration = Annotated[int, Field(ge=1, le=DEFAULT_MAX_DURATION)]


class ActionConferenceBody(BaseModel):
    """``ActionConferenceRequest`` (connect): the configuration defaults to the first call's."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str | None, Field(min_length=1, max_length=255)] = None
    recording: ConferenceRecordingBody | None = None
    maxDuration: MaxDuration = DEFAULT_MAX_DURATION
    callsConfigurationId: Annotated[str | None, Field(min_length=1, max_length=128)] = None
    platform: Platform | None = None

    def spec(self) -> ConferenceSpec:
        return ConferenceSpec(
            name=self.name,
            calls_configuration_id=self.callsConfigurationId,
            platform=self.platform.model_dump(exclude_none=True) if self.platform else None,
            max_duration=self.maxDuration,
        )


class ConferenceBody(ActionConferenceBody):
    """``ConferenceRequest``."""

    callsConfigurationId: Annotated[str, Field(min_length=1, max_length=128)]


class ActionCallBody(ChildCallBody):
    """``ActionCallRequest``: the new call of a conference."""

    maxDuration: MaxDuration = DEFAULT_MAX_DURATION

    def new_call(self) -> NewCall:
        child = self.child_call()
        return NewCall(
            endpoint=child.endpoint,
            from_=child.from_,
            from_display_name=child.from_display_name,
            connect_timeout=child.connect_timeout,
            max_duration=self.maxDuration,
            custom_data=child.custom_data,
            machine_detection=child.machine_detection,
        )


class RoleBody(BaseModel):
    """Only the DEFAULT role exists here: everyone hears everyone."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["DEFAULT"]


class JoinOptions(BaseModel):
    """How a call joins: at early media, or once answered with the room hearing a ringback
    of ours meanwhile."""

    model_config = ConfigDict(extra="forbid")
    connectOnEarlyMedia: bool = False
    ringbackGeneration: RingbackBody | None = None

    @model_validator(mode="after")
    def _exclusive(self) -> JoinOptions:
        if self.connectOnEarlyMedia and self.ringbackGeneration and self.ringbackGeneration.enabled:
            raise ValueError(
                "connectOnEarlyMedia cannot be true when ringbackGeneration is enabled"
            )
        return self

    @property
    def ringback(self) -> bool:
        return bool(self.ringbackGeneration and self.ringbackGeneration.enabled)


class AddNewCallBody(JoinOptions):
    """``AddNewCallRequest``."""

    callRequest: ActionCallBody
    role: RoleBody | None = None


class AddExistingCallBody(JoinOptions):
    """``AddExistingCallRequest``."""

    role: RoleBody | None = None
    customData: CustomData | None = None


class ConnectWithNewCallBody(JoinOptions):
    """``ConnectWithNewCallRequest``."""

    callRequest: ActionCallBody
    conferenceRequest: ActionConferenceBody | None = None


class ConnectBody(BaseModel):
    """``ConnectRequest``."""

    model_config = ConfigDict(extra="forbid")
    callIds: list[Annotated[str, Field(min_length=1, max_length=128)]]
    conferenceRequest: ActionConferenceBody | None = None


class UpdateBody(BaseModel):
    """``UpdateRequest`` / ``UpdateCallRequest``; ``blind`` is accepted (there is no video)."""

    model_config = ConfigDict(extra="forbid")
    muted: bool | None = None
    deaf: bool | None = None
    blind: bool | None = None


class UpdateCallBody(UpdateBody):
    role: RoleBody | None = None


def _control(request: Request) -> ConferenceControl:
    return request.app.state.gateway.conferences


Control = Annotated[ConferenceControl, Depends(_control)]


def _error(error: CallError) -> ApiError:
    if isinstance(error, ConferenceNotFound):
        return not_found("Conference", error.conference_id)
    if isinstance(error, ParticipantNotFound):
        return ApiError(404, str(error))
    return _raise_for(error)


class ConferenceFilters:
    """The query parameters of both lists (``endTimeBefore`` is history's, but harmless here)."""

    def __init__(
        self,
        name: str | None = None,
        callId: str | None = None,
        callsConfigurationId: str | None = None,
        applicationId: str | None = None,
        startTimeAfter: str | None = None,
        endTimeBefore: str | None = None,
    ) -> None:
        self.query = ConferenceQuery(
            name=name,
            call_id=callId,
            calls_configuration_id=callsConfigurationId,
            application_id=applicationId,
            start_time_after=_time_param("startTimeAfter", startTimeAfter),
            end_time_before=_time_param("endTimeBefore", endTimeBefore),
        )

    def with_ended(self, ended: bool) -> ConferenceQuery:
        return ConferenceQuery(**{**self.query.__dict__, "ended": ended})


Filters = Annotated[ConferenceFilters, Depends()]


def _with_call(conference: Conference, leg: Leg) -> dict[str, Any]:
    """``ConferenceAndCall``."""
    return {"conference": conference_view(conference), "call": call_view(leg)}


# -- connect ----------------------------------------------------------------------------------


def _recordings(request: Request) -> RecordingControl:
    return request.app.state.gateway.recordings


Recordings = Annotated[RecordingControl, Depends(_recordings)]


def _record(recordings: RecordingControl, conference: Conference, body: Any) -> None:
    """The request's ``recording``: the new conference is recorded from its start."""
    if body is not None and body.recording is not None:
        try:
            recordings.start_conference(conference.id, body.recording.options())
        except CallError as error:
            raise _error(error) from None


@router.post("/connect")
async def connect(body: ConnectBody, control: Control, recordings: Recordings) -> dict[str, Any]:
    spec = (body.conferenceRequest or ActionConferenceBody()).spec()
    try:
        conference = await control.connect(body.callIds, spec)
    except CallError as error:
        raise _error(error) from None
    _record(recordings, conference, body.conferenceRequest)
    return conference_view(conference)


@router.post("/calls/{call_id}/connect")
async def connect_with_new_call(
    call_id: str, body: ConnectWithNewCallBody, control: Control, recordings: Recordings
) -> dict[str, Any]:
    spec = (body.conferenceRequest or ActionConferenceBody()).spec()
    try:
        conference, leg = await control.connect_with_new_call(
            call_id,
            body.callRequest.new_call(),
            body.connectOnEarlyMedia,
            spec,
            ringback=body.ringback,
        )
    except CallError as error:
        raise _error(error) from None
    _record(recordings, conference, body.conferenceRequest)
    return _with_call(conference, leg)


# -- conferences ------------------------------------------------------------------------------


@router.post(CONFERENCES, status_code=201)
async def create_conference(
    body: ConferenceBody, control: Control, recordings: Recordings
) -> dict[str, Any]:
    try:
        conference = control.create(body.spec())
    except CallError as error:
        raise _error(error) from None
    _record(recordings, conference, body)
    return conference_view(conference)


@router.get(CONFERENCES)
async def list_conferences(control: Control, filters: Filters, page: Paging) -> dict[str, Any]:
    """The live conferences."""
    conferences, total = control.query(filters.with_ended(False), page.offset, page.size)
    return page.envelope([conference_view(c) for c in conferences], total)


@router.get(f"{CONFERENCES}/history")
async def conferences_history(control: Control, filters: Filters, page: Paging) -> dict[str, Any]:
    conferences, total = control.query(filters.with_ended(True), page.offset, page.size)
    return page.envelope([conference_log_view(c) for c in conferences], total)


def _get(control: ConferenceControl, conference_id: str) -> Conference:
    try:
        return control.get(conference_id)
    except CallError as error:
        raise _error(error) from None


@router.get(CONFERENCES + "/{conference_id}")
async def get_conference(conference_id: str, control: Control) -> dict[str, Any]:
    return conference_view(_get(control, conference_id))


@router.get(CONFERENCES + "/{conference_id}/history")
async def get_conference_history(conference_id: str, control: Control) -> dict[str, Any]:
    conference = _get(control, conference_id)
    if conference.end_time is None:
        raise ApiError(404, f"Conference {conference_id!r} has no history yet: it is still live.")
    return conference_log_view(conference)


@router.patch(CONFERENCES + "/{conference_id}")
async def update_all_calls(
    conference_id: str, body: UpdateBody, control: Control
) -> dict[str, str]:
    try:
        control.update(conference_id, None, body.muted, body.deaf)
    except CallError as error:
        raise _error(error) from None
    return PENDING


@router.post(CONFERENCES + "/{conference_id}/call")
async def add_new_call(
    conference_id: str, body: AddNewCallBody, control: Control
) -> dict[str, Any]:
    try:
        conference, leg = await control.add_new(
            conference_id,
            body.callRequest.new_call(),
            body.connectOnEarlyMedia,
            ringback=body.ringback,
        )
    except CallError as error:
        raise _error(error) from None
    return _with_call(conference, leg)


@router.put(CONFERENCES + "/{conference_id}/call/{call_id}")
async def add_existing_call(
    conference_id: str,
    call_id: str,
    control: Control,
    body: Annotated[AddExistingCallBody | None, Body()] = None,
) -> dict[str, Any]:
    body = body or AddExistingCallBody()
    try:
        conference = await control.add_existing(
            conference_id,
            call_id,
            body.connectOnEarlyMedia,
            body.customData,
            ringback=body.ringback,
        )
    except CallError as error:
        raise _error(error) from None
    return conference_view(conference)


@router.delete(CONFERENCES + "/{conference_id}/call/{call_id}")
async def remove_call(conference_id: str, call_id: str, control: Control) -> dict[str, str]:
    try:
        await control.remove(conference_id, call_id)
    except CallError as error:
        raise _error(error) from None
    return PENDING


@router.patch(CONFERENCES + "/{conference_id}/call/{call_id}")
async def update_call(
    conference_id: str, call_id: str, body: UpdateCallBody, control: Control
) -> dict[str, str]:
    try:
        control.update(conference_id, call_id, body.muted, body.deaf)
    except CallError as error:
        raise _error(error) from None
    return PENDING


@router.post(CONFERENCES + "/{conference_id}/hangup")
async def hangup_conference(conference_id: str, control: Control) -> dict[str, Any]:
    try:
        conference = await control.hangup(conference_id)
    except CallError as error:
        raise _error(error) from None
    return conference_view(conference)
