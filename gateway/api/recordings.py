"""Recording: start and stop on calls, dialogs and conferences, and ``/calls/1/recordings``
(lists, one call's, dialog's or conference's recording, composing one made apart, files to
download with HTTP ranges, deletion)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.types import Receive, Scope, Send

from gateway.api.calls import PENDING, EndpointType, Paging, _time_param
from gateway.api.dialogs import _error
from gateway.api.errors import ApiError, bad_request
from gateway.api.recording_bodies import (
    CompositionBody,
    ConferenceRecordingBody,
    DialogRecordingBody,
    StartRecordingBody,
)
from gateway.core.calls import CallError
from gateway.core.conferences import ConferenceNotFound
from gateway.core.leg import Direction
from gateway.core.recordings import (
    OwnerKind,
    RecordingControl,
    RecordingFile,
    RecordingNotFound,
    RecordingQuery,
    recording_view,
)
from gateway.core.views import recording_file_view

router = APIRouter(prefix="/calls/1", tags=["recordings"])


def _control(request: Request) -> RecordingControl:
    return request.app.state.gateway.recordings


Control = Annotated[RecordingControl, Depends(_control)]


def _raise(error: CallError) -> ApiError:
    if isinstance(error, RecordingNotFound | ConferenceNotFound):
        return ApiError(404, str(error))
    return _error(error)


def _run(action: Callable[[], object]) -> dict[str, str]:
    """An action answered PENDING, its outcome reported by events; errors in the API's shape."""
    try:
        action()
    except CallError as error:
        raise _raise(error) from None
    return PENDING


# -- start and stop -------------------------------------------------------------------------


@router.post("/calls/{call_id}/start-recording")
async def start_call_recording(
    call_id: str, body: StartRecordingBody, control: Control
) -> dict[str, str]:
    return _run(lambda: control.start_call(call_id, body.recording.options()))


@router.post("/calls/{call_id}/stop-recording")
async def stop_call_recording(call_id: str, control: Control) -> dict[str, str]:
    return _run(lambda: control.stop_call(call_id))


@router.post("/dialogs/{dialog_id}/start-recording")
async def start_dialog_recording(
    dialog_id: str, body: DialogRecordingBody, control: Control
) -> dict[str, str]:
    return _run(lambda: control.start_dialog(dialog_id, body.options()))


@router.post("/dialogs/{dialog_id}/stop-recording")
async def stop_dialog_recording(dialog_id: str, control: Control) -> dict[str, str]:
    return _run(lambda: control.stop_dialog(dialog_id))


@router.post("/conferences/{conference_id}/start-recording")
async def start_conference_recording(
    conference_id: str, body: ConferenceRecordingBody, control: Control
) -> dict[str, str]:
    return _run(lambda: control.start_conference(conference_id, body.options()))


@router.post("/conferences/{conference_id}/stop-recording")
async def stop_conference_recording(conference_id: str, control: Control) -> dict[str, str]:
    return _run(lambda: control.stop_conference(conference_id))


# -- lists ----------------------------------------------------------------------------------


class CallRecordingFilters:
    def __init__(
        self,
        callId: str | None = None,
        callsConfigurationId: str | None = None,
        applicationId: str | None = None,
        entityId: str | None = None,
        endpointIdentifier: str | None = None,
        startTimeAfter: str | None = None,
        endTimeBefore: str | None = None,
        direction: Direction | None = None,
        endpointType: EndpointType | None = None,
    ) -> None:
        self.query = RecordingQuery(
            call_id=callId,
            calls_configuration_id=callsConfigurationId,
            application_id=applicationId,
            entity_id=entityId,
            endpoint_identifier=endpointIdentifier,
            start_time_after=_time_param("startTimeAfter", startTimeAfter),
            end_time_before=_time_param("endTimeBefore", endTimeBefore),
            direction=direction.value if direction else None,
            endpoint_type=endpointType,
        )


def _refuse_endpoint_filters(owner: str, kind: str | None, identifier: str | None) -> None:
    """The calls' endpoints are not filters of dialog or conference recordings yet."""
    for name, value in (("callEndpointType", kind), ("callEndpointIdentifier", identifier)):
        if value is not None:
            raise bad_request(name, f"is not available yet as a filter of {owner} recordings")


class DialogRecordingFilters:
    """``callId``: either call of the dialog. The calls' endpoints are not filters yet: refused
    by name rather than ignored."""

    def __init__(
        self,
        dialogId: str | None = None,
        callsConfigurationId: str | None = None,
        applicationId: str | None = None,
        entityId: str | None = None,
        callId: str | None = None,
        callEndpointType: str | None = None,
        callEndpointIdentifier: str | None = None,
        startTimeAfter: str | None = None,
        endTimeBefore: str | None = None,
        composition: bool | None = None,
    ) -> None:
        _refuse_endpoint_filters("dialog", callEndpointType, callEndpointIdentifier)
        self.query = RecordingQuery(
            OwnerKind.DIALOG,
            call_id=callId,
            dialog_id=dialogId,
            calls_configuration_id=callsConfigurationId,
            application_id=applicationId,
            entity_id=entityId,
            start_time_after=_time_param("startTimeAfter", startTimeAfter),
            end_time_before=_time_param("endTimeBefore", endTimeBefore),
            composition=composition,
        )


class ConferenceRecordingFilters:
    """``callId``: any call that was in the conference. The calls' endpoints are not filters
    yet: refused by name rather than ignored."""

    def __init__(
        self,
        conferenceId: str | None = None,
        callsConfigurationId: str | None = None,
        applicationId: str | None = None,
        entityId: str | None = None,
        conferenceName: str | None = None,
        callId: str | None = None,
        callEndpointType: str | None = None,
        callEndpointIdentifier: str | None = None,
        startTimeAfter: str | None = None,
        endTimeBefore: str | None = None,
        composition: bool | None = None,
    ) -> None:
        _refuse_endpoint_filters("conference", callEndpointType, callEndpointIdentifier)
        self.query = RecordingQuery(
            OwnerKind.CONFERENCE,
            call_id=callId,
            conference_id=conferenceId,
            conference_name=conferenceName,
            calls_configuration_id=callsConfigurationId,
            application_id=applicationId,
            entity_id=entityId,
            start_time_after=_time_param("startTimeAfter", startTimeAfter),
            end_time_before=_time_param("endTimeBefore", endTimeBefore),
            composition=composition,
        )


def _page(control: RecordingControl, query: RecordingQuery, page: Paging) -> dict[str, Any]:
    groups, total = control.find(query, page.offset, page.size)
    return page.envelope([recording_view(files, public=True) for files in groups], total)


@router.get("/recordings/calls")
async def list_call_recordings(
    control: Control, filters: Annotated[CallRecordingFilters, Depends()], page: Paging
) -> dict[str, Any]:
    return _page(control, filters.query, page)


@router.get("/recordings/dialogs")
async def list_dialog_recordings(
    control: Control, filters: Annotated[DialogRecordingFilters, Depends()], page: Paging
) -> dict[str, Any]:
    return _page(control, filters.query, page)


@router.get("/recordings/conferences")
async def list_conference_recordings(
    control: Control, filters: Annotated[ConferenceRecordingFilters, Depends()], page: Paging
) -> dict[str, Any]:
    return _page(control, filters.query, page)


# -- one call's, one dialog's -----------------------------------------------------------------


def _files_of(lookup: Callable[[str], list[RecordingFile]], owner_id: str) -> list[RecordingFile]:
    """A call's or a dialog's files; 404 (or 400) in the Calls API shape when it has none."""
    try:
        return lookup(owner_id)
    except CallError as error:
        raise _raise(error) from None


def _deleted(control: RecordingControl, files: list[RecordingFile]) -> dict[str, Any]:
    control.delete_files(files)
    return recording_view(files, public=True)


@router.get("/recordings/calls/{call_id}")
async def get_call_recording(call_id: str, control: Control) -> dict[str, Any]:
    return recording_view(_files_of(control.of_call, call_id), public=True)


@router.delete("/recordings/calls/{call_id}")
async def delete_call_recording(call_id: str, control: Control) -> dict[str, Any]:
    return _deleted(control, _files_of(control.of_call, call_id))


@router.get("/recordings/dialogs/{dialog_id}")
async def get_dialog_recording(dialog_id: str, control: Control) -> dict[str, Any]:
    return recording_view(_files_of(control.of_dialog, dialog_id), public=True)


@router.delete("/recordings/dialogs/{dialog_id}")
async def delete_dialog_recording(dialog_id: str, control: Control) -> dict[str, Any]:
    return _deleted(control, _files_of(control.of_dialog, dialog_id))


@router.get("/recordings/conferences/{conference_id}")
async def get_conference_recording(conference_id: str, control: Control) -> dict[str, Any]:
    return recording_view(_files_of(control.of_conference, conference_id), public=True)


@router.delete("/recordings/conferences/{conference_id}")
async def delete_conference_recording(conference_id: str, control: Control) -> dict[str, Any]:
    return _deleted(control, _files_of(control.of_conference, conference_id))


@router.post("/recordings/dialogs/{dialog_id}/compose")
async def compose_dialog_recording(
    dialog_id: str, body: CompositionBody, control: Control
) -> dict[str, str]:
    return _compose(control, OwnerKind.DIALOG, dialog_id, body)


@router.post("/recordings/conferences/{conference_id}/compose")
async def compose_conference_recording(
    conference_id: str, body: CompositionBody, control: Control
) -> dict[str, str]:
    return _compose(control, OwnerKind.CONFERENCE, conference_id, body)


def _compose(
    control: RecordingControl, kind: OwnerKind, owner_id: str, body: CompositionBody
) -> dict[str, str]:
    multi = body.multiChannel is not None and body.multiChannel.enabled
    return _run(lambda: control.compose(kind, owner_id, body.deleteCallRecordings, multi))


# -- files ----------------------------------------------------------------------------------


def wants_range(header: str | None, size: int) -> bool:
    """Whether ``Range: bytes=...`` is to be served (206, multipart/byteranges for several
    ranges); False for the whole file (no header, or a unit we do not know: ignored as RFC
    9110 §14.2 says). ValueError: a range that is invalid or outside the file, answered 416 in
    the Calls API's error shape rather than Starlette's plain text (or its 400)."""
    if header is None:
        return False
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return False
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if not dash or not (first or last) or not (first + last).isdigit():
            raise ValueError(f"{header!r} is not a byte range")
        if not first:  # the last N bytes
            if int(last) == 0 or size == 0:
                raise ValueError(f"{header!r} selects no bytes")
        elif (last and int(first) > int(last)) or int(first) >= size:
            raise ValueError(f"{header!r} is outside the file's {size} bytes")
    return True


class _Download(FileResponse):
    """Starlette's file response (ranges, ETag, Last-Modified, streamed off the loop), blind to
    a Range header :func:`wants_range` said to ignore."""

    def __init__(self, path: Path, filename: str, ranged: bool) -> None:
        super().__init__(path, media_type="application/octet-stream", filename=filename)
        self._ranged = ranged

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._ranged:
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]
            scope = {**scope, "headers": headers}
        await super().__call__(scope, receive, send)


@router.get("/recordings/files/{file_id}", response_model=None)
async def download_file(
    file_id: str, control: Control, range: Annotated[str | None, Header()] = None
) -> FileResponse | JSONResponse:
    try:
        file = control.get_file(file_id)
    except CallError as error:
        raise _raise(error) from None
    path = control.path(file)
    if file.failed or not path.is_file():
        raise ApiError(404, f"Recording file {file_id!r} has no audio: {file.reason or 'gone'}.")
    size = path.stat().st_size
    try:
        ranged = wants_range(range, size)
    except ValueError as error:
        body = ApiError(416, f"Range not satisfiable: {error}.").body()
        return JSONResponse(body, 416, headers={"Content-Range": f"bytes */{size}"})
    return _Download(path, file.name, ranged)


@router.delete("/recordings/files/{file_id}")
async def delete_file(file_id: str, control: Control) -> dict[str, Any]:
    try:
        return recording_file_view(control.delete_file(file_id), public=True)
    except CallError as error:
        raise _raise(error) from None
