"""``/calls/1/files``: audio files uploaded to be played on calls, dialogs and conferences."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.formparsers import MultiPartException, MultiPartParser

from gateway.api.calls import Paging, _raise_for
from gateway.api.errors import ApiError, bad_request
from gateway.core.calls import CallError
from gateway.core.files import AudioFile, AudioFileNotFound, FileLibrary
from gateway.timeutil import format_time

router = APIRouter(prefix="/calls/1/files", tags=["files"])
MULTIPART_OVERHEAD = 64 * 1024  # the boundaries and part headers around the file's bytes


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
async def upload_file(request: Request, library: Library) -> dict[str, Any]:
    """200 with the File, as the spec has it. Too large is a 400 naming ``file`` (the spec
    answers no 413). The body is read here, with the limit applied while it arrives, rather
    than by the framework's form parsing, which would spool any size to disk first."""
    data, name = await _one_file(request, library.max_bytes)
    try:
        return file_view(await library.upload(name, data))
    except CallError as error:
        raise _error(error) from None


def _too_big(limit: int) -> ApiError:
    return bad_request("file", f"is larger than the {limit} bytes allowed")


async def _one_file(request: Request, limit: int) -> tuple[bytes, str | None]:
    """The multipart body's ``file`` part: (its bytes, its file name)."""
    bound = limit + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > bound:
        raise _too_big(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > bound:
            raise _too_big(limit)

    async def replay() -> AsyncIterator[bytes]:
        yield bytes(body)

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("file", "must not be null: upload it as multipart/form-data")
    try:
        form = await MultiPartParser(request.headers, replay(), max_files=1, max_fields=10).parse()
    except MultiPartException as error:
        raise bad_request("file", f"cannot be read: {error.message}") from None
    upload = form.get("file")
    if not isinstance(upload, StarletteUpload):
        raise bad_request("file", "must not be null")
    try:
        data = await upload.read()
    finally:
        await form.close()
    return data, upload.filename  # its exact size is the library's to check


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
