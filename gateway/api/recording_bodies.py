"""The ``recording`` request bodies: of create-call and answer (``CallRecordingRequest``), of
start-recording (``RecordingStartRequest``) and of dialogs (``DialogRecordingRequest``).

Each turns into :class:`~gateway.core.recordings.RecordingOptions`. What the gateway cannot do
yet is refused by name rather than ignored: STEREO and ``beep``. AUDIO_AND_VIDEO
is accepted and recorded as audio (the gateway carries no video), and reported as asked.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.core.calls import DEFAULT_MAX_DURATION
from gateway.core.recordings import RecordingOptions

RecordingType = Literal["AUDIO", "AUDIO_AND_VIDEO"]
FilePrefix = Annotated[str, Field(min_length=1, max_length=214, pattern=r"^[a-zA-Z0-9_\-]*$")]
NOT_YET = "is not available yet"


class _Recording(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recordingType: RecordingType
    customData: dict[str, str] | None = None
    filePrefix: FilePrefix | None = None

    def options(self) -> RecordingOptions:
        return RecordingOptions(self.recordingType, self.customData or {}, self.filePrefix)


class CallRecordingBody(_Recording):
    """``CallRecordingRequest``."""

    channels: Literal["MONO", "STEREO"] = "MONO"

    @field_validator("channels")
    @classmethod
    def _mono(cls, channels: str) -> str:
        if channels == "STEREO":
            raise ValueError(f"STEREO {NOT_YET}: recordings are MONO")
        return channels


class RecordingBody(_Recording):
    """``RecordingRequest``: a recording may stop by itself after ``maxDuration`` seconds, or
    after ``maxSilence`` seconds in which nobody talked."""

    maxDuration: Annotated[int | None, Field(ge=1, le=DEFAULT_MAX_DURATION)] = None
    maxSilence: Annotated[int | None, Field(ge=1, le=DEFAULT_MAX_DURATION)] = None
    beep: bool = False

    @field_validator("beep")
    @classmethod
    def _no_beep(cls, beep: bool) -> bool:
        if beep:
            raise ValueError(f"{NOT_YET}: a beep before recording")
        return beep

    def options(self) -> RecordingOptions:
        options = super().options()
        return replace(options, max_duration=self.maxDuration, max_silence=self.maxSilence)


class StartRecordingBody(BaseModel):
    """``RecordingStartRequest``."""

    model_config = ConfigDict(extra="forbid")
    recording: RecordingBody


class Composition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False


class DialogRecordingBody(_Recording):
    """``DialogRecordingRequest``: one file of both participants when composed, else one each."""

    dialogComposition: Composition | None = None

    def options(self) -> RecordingOptions:
        composed = self.dialogComposition is not None and self.dialogComposition.enabled
        return replace(super().options(), composition=composed)
