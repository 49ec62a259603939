"""Audio files uploaded to be played (``/calls/1/files``): kept, listed, decoded, expired.

The bytes are kept as uploaded at ``<directory>/<fileId>.<wav|mp3>``; the row (name, format,
size, duration, times) is in the :class:`FileStore`. A file is checked by decoding it before
it is kept, and its decoded 8 kHz samples are cached for playing (``samples``).

Expiry follows the Calls API: "the file will be removed if it is not used for 90 days". A file
expires ``retention`` after its upload or its last use (``samples``, which every play calls,
moves ``expirationTime`` on). From that moment it is invisible (not found, not listed), and one
timer, armed for the next expiry, removes expired files from disk and store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np

from gateway.core.calls import CallError, InvalidRequest
from gateway.core.ports import ContentUnavailable
from gateway.media.audio_cache import AudioCache
from gateway.media.audiofile import DecodedAudio, UnsupportedAudio, decode_audio
from gateway.timeutil import utcnow

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_RETENTION = timedelta(days=90)
MAX_NAME_LENGTH = 255
# The sweep timer runs on the loop's monotonic clock, expiry times on the wall clock: never
# wait longer than this between sweeps, so that a wall-clock jump delays a removal by at most it.
_MAX_SWEEP_DELAY = 3600.0
_RETRY_REMOVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class AudioFile:
    """One uploaded file, as the Calls API's ``File`` describes it."""

    id: str
    name: str
    file_format: str  # "WAV" or "MP3"
    size: int  # bytes
    duration: int  # seconds
    creation_time: datetime
    expiration_time: datetime

    @property
    def filename(self) -> str:
        """Its name on disk."""
        return f"{self.id}.{self.file_format.lower()}"


class FileStore(Protocol):
    def save(self, file: AudioFile) -> None: ...

    def get(self, file_id: str) -> AudioFile | None:
        """The file, expired or not."""
        ...

    def page(self, now: datetime, offset: int, limit: int) -> tuple[list[AudioFile], int]:
        """Files not expired at ``now``, newest first, and how many there are."""
        ...

    def delete(self, file_id: str) -> None: ...

    def expired(self, now: datetime) -> list[AudioFile]: ...

    def next_expiry(self) -> datetime | None:
        """The earliest expiration time of any file."""
        ...


class AudioFileNotFound(CallError):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"File {file_id!r} was not found.")
        self.file_id = file_id


class FileLibrary:
    def __init__(
        self,
        store: FileStore,
        directory: Path,
        cache: AudioCache,
        max_bytes: int = DEFAULT_MAX_BYTES,
        retention: timedelta = DEFAULT_RETENTION,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self.directory = directory
        self._cache = cache
        self.max_bytes = max_bytes
        self.retention = retention
        self._clock = clock
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at: datetime | None = None

    # -- reading --------------------------------------------------------------------------

    def path(self, file: AudioFile) -> Path:
        return self.directory / file.filename

    def get(self, file_id: str) -> AudioFile:
        """The file; :class:`AudioFileNotFound` when there is none or it has expired."""
        file = self._store.get(file_id)
        if file is None or file.expiration_time <= self._clock():
            raise AudioFileNotFound(file_id)
        return file

    def page(self, offset: int, limit: int) -> tuple[list[AudioFile], int]:
        return self._store.page(self._clock(), offset, limit)

    async def samples(self, file_id: str) -> np.ndarray:
        """The file's audio as int16 mono 8 kHz (read-only, shared), decoded once and cached.

        A use: the file's expiry moves to ``retention`` from now. Raises
        :class:`AudioFileNotFound`, or :class:`ContentUnavailable` when the stored bytes can
        no longer be read or decoded."""
        file = self.get(file_id)
        touched = replace(file, expiration_time=self._clock() + self.retention)
        self._store.save(touched)
        return await self._cache.get(("file", file_id), lambda: self._decode_stored(touched))

    async def _decode_stored(self, file: AudioFile) -> np.ndarray:
        try:
            data = await asyncio.to_thread(self.path(file).read_bytes)
            return (await asyncio.to_thread(decode_audio, data)).samples
        except (OSError, UnsupportedAudio) as error:
            raise ContentUnavailable(f"File {file.id!r} cannot be played: {error}") from None

    # -- verbs ----------------------------------------------------------------------------

    async def upload(self, name: str | None, data: bytes) -> AudioFile:
        """Check (size, format, decodable), keep on disk, then in the store. Raises
        :class:`InvalidRequest` naming ``file`` when the upload is refused."""
        if len(data) > self.max_bytes:
            raise InvalidRequest({"file": [f"is larger than the {self.max_bytes} bytes allowed"]})
        if name is not None and len(name) > MAX_NAME_LENGTH:
            raise InvalidRequest({"file": [f"name is longer than {MAX_NAME_LENGTH} characters"]})
        try:
            decoded: DecodedAudio = await asyncio.to_thread(decode_audio, data)
        except UnsupportedAudio as error:
            raise InvalidRequest({"file": [str(error)]}) from None
        file_id = str(uuid.uuid4())
        now = self._clock()
        file = AudioFile(
            id=file_id,
            name=name or f"{file_id}.{decoded.file_format.lower()}",
            file_format=decoded.file_format,
            size=len(data),
            duration=round(decoded.duration_ms / 1000),
            creation_time=now,
            expiration_time=now + self.retention,
        )
        path = self.path(file)
        write = asyncio.ensure_future(asyncio.to_thread(self._write, path, data))
        try:
            await asyncio.shield(write)  # a cancelled request must not leave a file behind
            self._store.save(file)
        except BaseException:
            write.add_done_callback(lambda _: path.unlink(missing_ok=True))
            raise
        self._cache.put(("file", file.id), decoded.samples)
        self._arm(file.expiration_time)
        return file

    def _write(self, path: Path, data: bytes) -> None:
        """Whole or not at all: a temporary file in the same directory, renamed into place."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def delete(self, file_id: str) -> AudioFile:
        file = self.get(file_id)
        self._remove(file)
        return file

    def _remove(self, file: AudioFile) -> None:
        self.path(file).unlink(missing_ok=True)
        self._store.delete(file.id)
        self._cache.discard(("file", file.id))

    # -- expiry ---------------------------------------------------------------------------

    def start(self) -> None:
        """Remove what expired while the gateway was down, and arm the sweep (on the loop)."""
        self.sweep()

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = self._sweep_at = None

    def sweep(self) -> int:
        """Remove every expired file (disk and store), re-arm for the next expiry; how many."""
        self._sweep = self._sweep_at = None
        expired = self._store.expired(self._clock())
        for file in expired:
            try:
                self._remove(file)
            except OSError as error:  # the row stays: the next sweep tries again
                log.warning("could not remove expired file %s: %s", file.id, error)
        if expired:
            log.info("removed %d expired audio files", len(expired))
        following = self._store.next_expiry()
        if following is not None:  # one that could not be removed is retried a while later
            self._arm(max(following, self._clock() + _RETRY_REMOVAL))
        return len(expired)

    def _arm(self, moment: datetime) -> None:
        """Make sure a sweep runs by ``moment``: one timer, for the earliest expiry."""
        if self._sweep is not None and self._sweep_at is not None and self._sweep_at <= moment:
            return
        if self._sweep is not None:
            self._sweep.cancel()
        now = self._clock()
        delay = min(max((moment - now).total_seconds(), 0.0), _MAX_SWEEP_DELAY)
        self._sweep = asyncio.get_running_loop().call_later(delay, self.sweep)
        self._sweep_at = now + timedelta(seconds=delay)
