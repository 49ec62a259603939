"""The ``recording`` request bodies: of create-call and answer (``CallRecordingRequest``), of
start-recording (``RecordingStartRequest``), of dialogs (``DialogRecordingRequest``) and of
conferences (``ConferenceRecordingRequest``), and the on-demand composition
(``OnDemandComposition``).

Each turns into :class:`~gateway.core.recordings.RecordingOptions`. AUDIO_AND_VIDEO is accepted
and recorded as audio (the gateway carries no video), and reported as asked.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.core.calls import DEFAULT_MAX_DURATION
from gateway.core.recordings import RecordingOptions

RecordingType = Literal["AUDIO", "AUDIO_AND_VIDEO"]
FilePrefix = Annotated[str, Field(min_length=1, max_length=214, pattern=r"^[a-zA-Z0-9_\-]*$")]


class _Recording(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recordingType: RecordingType
    customData: dict[str, str] | None = None
    filePrefix: FilePrefix | None = None

    def options(self) -> RecordingOptions:
        return RecordingOptions(self.recordingType, self.customData or {}, self.filePrefix)


class CallRecordingBody(_Recording):
    """``CallRecordingRequest``: STEREO puts what the endpoint sends on the left channel and
    what it hears (from the other leg of its dialog) on the right."""

    channels: Literal["MONO", "STEREO"] = "MONO"

    def options(self) -> RecordingOptions:
        return replace(super().options(), channels=2 if self.channels == "STEREO" else 1)


class RecordingBody(_Recording):
    """``RecordingRequest``: a recording may stop by itself after ``maxDuration`` seconds, or
    after ``maxSilence`` seconds in which nobody talked."""

    maxDuration: Annotated[int | None, Field(ge=1, le=DEFAULT_MAX_DURATION)] = None
    maxSilence: Annotated[int | None, Field(ge=1, le=DEFAULT_MAX_DURATION)] = None
    beep: bool = False  # heard by the call before the recording starts

    def options(self) -> RecordingOptions:
        options = super().options()
        return replace(
            options, max_duration=self.maxDuration, max_silence=self.maxSilence, beep=self.beep
        )


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


class ConferenceRecordingBody(_Recording):
    """``ConferenceRecordingRequest``: one file of the room when composed, else one per
    participant (from its join to its leave)."""

    conferenceComposition: Composition | None = None

    def options(self) -> RecordingOptions:
        composition = self.conferenceComposition
        return replace(
            super().options(), composition=composition is not None and composition.enabled
        )


class MultiChannel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class CompositionBody(BaseModel):
    """``OnDemandComposition``: the participants' files mixed into one (each on its own
    channel with ``multiChannel``), deleted afterwards unless ``deleteCallRecordings`` false."""

    model_config = ConfigDict(extra="forbid")
    deleteCallRecordings: bool = True
    multiChannel: MultiChannel | None = None
