"""``/calls/1/dialogs``: create (with a new child or two existing calls), list, get, history,
hang up."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.calls import (
    CustomData,
    Endpoint,
    MachineDetection,
    Paging,
    _raise_for,
    _time_param,
    machine_detection,
)
from gateway.api.errors import ApiError, not_found
from gateway.api.recording_bodies import (
    Composition,  # noqa: F401 - conferences import it here
    DialogRecordingBody,
)
from gateway.core.calls import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_DURATION, CallError
from gateway.core.dialogs import (
    ChildCall,
    Dialog,
    DialogControl,
    DialogNotFound,
    DialogQuery,
    DialogState,
    Propagation,
    dialog_log_view,
)
from gateway.core.recordings import RecordingControl

router = APIRouter(prefix="/calls/1/dialogs", tags=["dialogs"])


class ChildCallBody(BaseModel):
    """``DialogCallRequest``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    endpoint: Endpoint
    from_: Annotated[str | None, Field(alias="from", min_length=1, max_length=255)] = None
    fromDisplayName: Annotated[str | None, Field(max_length=255)] = None
    connectTimeout: Annotated[int, Field(ge=1, le=60)] = DEFAULT_CONNECT_TIMEOUT
    machineDetection: MachineDetection | None = None
    customData: CustomData = Field(default_factory=dict)

    def child_call(self) -> ChildCall:
        return ChildCall(
            endpoint=self.endpoint.model_dump(),
            from_=self.from_,
            from_display_name=self.fromDisplayName,
            connect_timeout=self.connectTimeout,
            custom_data=self.customData,
            machine_detection=machine_detection(self.machineDetection),
        )


class RingbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False


class PropagationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    childCallHangup: bool = True
    childCallRinging: bool = False
    ringbackGeneration: RingbackBody | None = None

    def propagation(self) -> Propagation:
        ringback = self.ringbackGeneration.enabled if self.ringbackGeneration else False
        return Propagation(self.childCallHangup, self.childCallRinging, ringback)


class ExistingCallsBody(BaseModel):
    """``DialogWithExistingCallsRequest``."""

    model_config = ConfigDict(extra="forbid")
    recording: DialogRecordingBody | None = None  # starts when the dialog is established
    maxDuration: Annotated[int, Field(ge=1, le=DEFAULT_MAX_DURATION)] = DEFAULT_MAX_DURATION
    propagationOptions: PropagationBody | None = None

    def propagation(self) -> Propagation:
        options = self.propagationOptions or PropagationBody()
        return options.propagation()


class DialogBody(ExistingCallsBody):
    """``DialogRequest``."""

    parentCallId: Annotated[str, Field(min_length=1, max_length=128)]
    childCallRequest: ChildCallBody


def _control(request: Request) -> DialogControl:
    return request.app.state.gateway.dialogs


def _recordings(request: Request) -> RecordingControl:
    return request.app.state.gateway.recordings


Control = Annotated[DialogControl, Depends(_control)]
Recordings = Annotated[RecordingControl, Depends(_recordings)]


def _error(error: CallError) -> ApiError:
    if isinstance(error, DialogNotFound):
        return not_found("Dialog", error.dialog_id)
    return _raise_for(error)


class DialogFilters:
    """The query parameters of both lists (``endTimeBefore`` is history's, but harmless here)."""

    def __init__(
        self,
        callsConfigurationId: str | None = None,
        applicationId: str | None = None,
        state: DialogState | None = None,
        parentCallId: str | None = None,
        childCallId: str | None = None,
        startTimeAfter: str | None = None,
        endTimeBefore: str | None = None,
    ) -> None:
        self.query = DialogQuery(
            calls_configuration_id=callsConfigurationId,
            application_id=applicationId,
            state=state,
            parent_call_id=parentCallId,
            child_call_id=childCallId,
            start_time_after=_time_param("startTimeAfter", startTimeAfter),
            end_time_before=_time_param("endTimeBefore", endTimeBefore),
        )


Filters = Annotated[DialogFilters, Depends()]


@router.post("", status_code=201)
async def create_dialog(
    body: DialogBody, control: Control, recordings: Recordings
) -> dict[str, Any]:
    try:
        if body.recording is not None:  # refused before anything is dialled
            recordings.check_dialog(body.parentCallId)
        dialog = await control.create(
            body.parentCallId,
            body.childCallRequest.child_call(),
            body.propagation(),
            body.maxDuration,
        )
    except CallError as error:
        raise _error(error) from None
    if body.recording is not None:
        recordings.start_dialog_when_established(dialog, body.recording.options())
    return control.view(dialog)


@router.post("/parent-call/{parent_call_id}/child-call/{child_call_id}", status_code=201)
async def create_dialog_with_existing_calls(
    parent_call_id: str,
    child_call_id: str,
    control: Control,
    recordings: Recordings,
    body: Annotated[ExistingCallsBody | None, Body()] = None,
) -> dict[str, Any]:
    body = body or ExistingCallsBody()
    try:
        if body.recording is not None:
            recordings.check_dialog(parent_call_id, child_call_id)
        dialog = await control.create_with_existing(
            parent_call_id, child_call_id, body.propagation(), body.maxDuration
        )
    except CallError as error:
        raise _error(error) from None
    if body.recording is not None:
        recordings.start_dialog_when_established(dialog, body.recording.options())
    return control.view(dialog)


@router.get("")
async def list_dialogs(control: Control, filters: Filters, page: Paging) -> dict[str, Any]:
    dialogs, total = control.query(filters.query, page.offset, page.size)
    return page.envelope([control.view(dialog) for dialog in dialogs], total)


@router.get("/history")
async def dialogs_history(control: Control, filters: Filters, page: Paging) -> dict[str, Any]:
    ended = DialogQuery(**{**filters.query.__dict__, "ended": True})
    dialogs, total = control.query(ended, page.offset, page.size)
    return page.envelope([dialog_log_view(dialog) for dialog in dialogs], total)


def _get(control: DialogControl, dialog_id: str) -> Dialog:
    try:
        return control.get(dialog_id)
    except CallError as error:
        raise _error(error) from None


@router.get("/{dialog_id}")
async def get_dialog(dialog_id: str, control: Control) -> dict[str, Any]:
    return control.view(_get(control, dialog_id))


@router.get("/{dialog_id}/history")
async def get_dialog_history(dialog_id: str, control: Control) -> dict[str, Any]:
    dialog = _get(control, dialog_id)
    if not dialog.state.is_final:
        raise ApiError(404, f"Dialog {dialog_id!r} has no history yet: it is still {dialog.state}.")
    return dialog_log_view(dialog)


@router.post("/{dialog_id}/hangup")
async def hangup_dialog(dialog_id: str, control: Control) -> dict[str, Any]:
    try:
        dialog = await control.hangup(dialog_id)
    except CallError as error:
        raise _error(error) from None
    return control.view(dialog)
