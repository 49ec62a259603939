"""What a simulated phone sends: a source, as ``PUT /pstn/1/calls/{id}/source`` sets it and as a
number's ``source`` option names it (played from the moment the phone answers).

``{"type": "tone", "frequency": 440, "amplitude": 0.3}``, ``{"type": "silence"}``,
``{"type": "text", "text": "...", "language": "en", "loop": false}`` (espeak-ng), or
``{"type": "file", "fileId": "...", "loop": false}``: an audio file uploaded through
``POST /calls/1/files`` (a real greeting, say, to put in front of the machine detector).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.media.voices import UnsupportedVoice, resolve_voice
from trunks.pstn.audio import SourceError, pcm_frames, silence_frames, speech, tone_frames


class FileSamples(Protocol):
    def get(self, file_id: str) -> Any:
        """The file's record; raises when there is no such file."""

    async def samples(self, file_id: str) -> np.ndarray: ...


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["tone", "silence", "text", "file"]
    frequency: Annotated[float | None, Field(ge=50, le=3900)] = None
    amplitude: Annotated[float, Field(gt=0, le=1)] = 0.3
    text: Annotated[str | None, Field(min_length=1, max_length=2000)] = None
    language: Annotated[str, Field(min_length=2, max_length=16)] = "en"  # a say language
    fileId: Annotated[str | None, Field(min_length=1, max_length=128)] = None
    loop: bool = False

    @model_validator(mode="after")
    def _complete(self) -> Source:
        needed = {"tone": "frequency", "text": "text", "file": "fileId"}.get(self.type)
        if needed is not None and getattr(self, needed) is None:
            raise InvalidSource(needed, f"must not be null for a {self.type} source")
        if self.type == "text":
            try:
                resolve_voice(self.language)
            except UnsupportedVoice as error:
                raise InvalidSource("language", str(error)) from None
        return self

    @classmethod
    def parse(cls, document: Any) -> Source:
        """A source from JSON; :class:`InvalidSource` names the first bad field."""
        try:
            return cls.model_validate(document)
        except ValidationError as error:
            first = error.errors()[0]
            cause = first.get("ctx", {}).get("error")
            if isinstance(cause, InvalidSource):
                raise cause from None
            field = ".".join(str(part) for part in first["loc"]) or "source"
            raise InvalidSource(field, first["msg"]) from None

    async def frames(self, files: FileSamples | None) -> Iterator[np.ndarray]:
        """The source's frames; text is synthesised and files loaded first. Raises
        :class:`SourceError` when that fails (an unknown file among them)."""
        if self.type == "tone":
            assert self.frequency is not None
            return tone_frames(self.frequency, self.amplitude)
        if self.type == "text":
            assert self.text is not None
            return pcm_frames(await speech(self.text, self.language), loop=self.loop)
        if self.type == "file":
            assert self.fileId is not None
            if files is None:
                raise SourceError("files cannot be played here")
            try:
                pcm = await files.samples(self.fileId)
            except Exception as error:  # not found, or no longer decodable
                raise SourceError(f"file {self.fileId!r} cannot be played: {error}") from None
            return pcm_frames(pcm, loop=self.loop)
        return silence_frames()


class InvalidSource(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name} {message}")
        self.field_name = field_name
        self.message = message
