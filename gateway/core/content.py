"""What a say or play action plays: content of the Calls API's ``PublicPlayContent`` types,
resolved to 8 kHz samples.

FILE is an uploaded file, RECORDING a recording file of ours, URL audio fetched once and
cached, TEXT (and every say) speech synthesised with espeak-ng. Whether a FILE or RECORDING
exists is checked when the action is asked for (a 400 naming the field); what can only be
known while loading (a URL that fails, a file that does not decode) raises
:class:`~gateway.core.ports.ContentUnavailable`, which the action reports as an ERROR event.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gateway.core.calls import CallError, InvalidRequest
from gateway.core.ports import AudioFetcher, ContentUnavailable
from gateway.media.audio_cache import AudioCache
from gateway.media.audiofile import UnsupportedAudio, decode_audio

log = logging.getLogger(__name__)


class ContentType(StrEnum):
    FILE = "FILE"
    URL = "URL"
    RECORDING = "RECORDING"
    TEXT = "TEXT"


@dataclass(frozen=True)
class Speech:
    """Text to synthesise: ``voice`` is what :func:`gateway.media.voices.resolve_voice` gave."""

    text: str
    voice: Any
    rate: float = 1.0


@dataclass(frozen=True)
class PlayContent:
    type: ContentType
    file_id: str | None = None
    url: str | None = None
    speech: Speech | None = None


class FileSamples(Protocol):
    """The uploaded files (:class:`gateway.core.files.FileLibrary`)."""

    def get(self, file_id: str) -> Any:
        """The file's metadata; raises a CallError when there is no such file."""
        ...

    async def samples(self, file_id: str) -> np.ndarray: ...


class RecordingFiles(Protocol):
    """The recordings (:class:`gateway.core.recordings.RecordingControl`)."""

    def get_file(self, file_id: str) -> Any: ...

    def path(self, file: Any) -> Path: ...


class Synthesizer(Protocol):
    async def synthesize(self, text: str, voice: Any, speech_rate: float = 1.0) -> np.ndarray: ...


class ContentLoader:
    def __init__(
        self,
        files: FileSamples,
        recordings: RecordingFiles,
        fetcher: AudioFetcher,
        synthesizer: Synthesizer,
        cache: AudioCache,
    ) -> None:
        self._files = files
        self._recordings = recordings
        self._fetcher = fetcher
        self._synthesizer = synthesizer
        self._cache = cache  # the files' and URLs' cache: a replayed recording is read once

    def check(self, content: PlayContent, field: str = "content") -> None:
        """Raise InvalidRequest naming ``field``.fileId when the file is not there."""
        try:
            if content.type is ContentType.FILE:
                self._files.get(str(content.file_id))
            elif content.type is ContentType.RECORDING:
                self._recordings.get_file(str(content.file_id))
        except CallError as error:
            raise InvalidRequest({f"{field}.fileId": [str(error)]}) from None

    async def load(self, content: PlayContent) -> np.ndarray:
        """The content as int16 8 kHz samples; raises ContentUnavailable."""
        try:
            if content.type is ContentType.FILE:
                return await self._files.samples(str(content.file_id))
            if content.type is ContentType.RECORDING:
                return await self._recording(str(content.file_id))
            if content.type is ContentType.URL:
                return await self._fetcher.fetch(str(content.url))
            assert content.speech is not None
            speech = content.speech
            return await self._synthesizer.synthesize(speech.text, speech.voice, speech.rate)
        except ContentUnavailable:
            raise
        except CallError as error:  # deleted or expired since the request
            raise ContentUnavailable(str(error)) from None
        except Exception as error:  # a file gone from disk, a synthesis failing: the ERROR event
            log.warning("%s content failed to load: %s", content.type, error)
            raise ContentUnavailable(f"{content.type} content cannot be played: {error}") from None

    async def _recording(self, file_id: str) -> np.ndarray:
        """A finished recording never changes: decoded once, kept in the audio cache (a
        deleted one is refused by ``get_file`` before the cache is asked)."""
        path = self._recordings.path(self._recordings.get_file(file_id))

        async def decode() -> np.ndarray:
            try:
                data = await asyncio.to_thread(path.read_bytes)
                return (await asyncio.to_thread(decode_audio, data)).samples
            except UnsupportedAudio as error:
                reason = f"Recording {file_id!r} cannot be played: {error}"
                raise ContentUnavailable(reason) from None

        return await self._cache.get(("recording", file_id), decode)
