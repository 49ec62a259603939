"""``/calls/1/files``: audio files uploaded to be played on calls, dialogs and conferences."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, UploadFile

from gateway.api.calls import Paging, _raise_for
from gateway.api.errors import ApiError
from gateway.core.calls import CallError
from gateway.core.files import AudioFile, AudioFileNotFound, FileLibrary
from gateway.timeutil import format_time

router = APIRouter(prefix="/calls/1/files", tags=["files"])


def _library(request: Request) -> FileLibrary:
    return request.app.state.gateway.files


Library = Annotated[FileLibrary, Depends(_library)]


def file_view(file: AudioFile) -> dict[str, Any]:
    """The Calls API's ``File``."""
    return {
        "id": file.id,
        "name": file.name,
        "fileFormat": file.file_format,
        "size": file.size,
        "creationTime": format_time(file.creation_time),
        "expirationTime": format_time(file.expiration_time),
        "duration": file.duration,
    }


def _error(error: CallError) -> ApiError:
    if isinstance(error, AudioFileNotFound):
        return ApiError(404, str(error))
    return _raise_for(error)


@router.post("")
async def upload_file(file: Annotated[UploadFile, File()], library: Library) -> dict[str, Any]:
    """200 with the File, as the spec has it. Too large is a 400 naming ``file`` (the spec
    answers no 413); only one byte past the limit is read before refusing."""
    data = await file.read(library.max_bytes + 1)
    try:
        return file_view(await library.upload(file.filename, data))
    except CallError as error:
        raise _error(error) from None


@router.get("")
async def list_files(library: Library, page: Paging) -> dict[str, Any]:
    files, total = library.page(page.offset, page.size)
    return page.envelope([file_view(f) for f in files], total)


@router.get("/{file_id}")
async def get_file(file_id: str, library: Library) -> dict[str, Any]:
    try:
        return file_view(library.get(file_id))
    except CallError as error:
        raise _error(error) from None


@router.delete("/{file_id}")
async def delete_file(file_id: str, library: Library) -> dict[str, Any]:
    try:
        return file_view(library.delete(file_id))
    except CallError as error:
        raise _error(error) from None
