"""In-call actions: ``say``, ``play``, ``stop-play`` on calls, dialogs and conferences, and
``send-dtmf`` and ``capture/dtmf`` on calls. Each answers ``{"status": "PENDING"}`` at once;
the outcome comes as an event (SAY_FINISHED, PLAY_FINISHED, DTMF_CAPTURED or ERROR).

Everything that can be known from the request is checked here and refused with a 400 that
names the field: empty text, a language or voice espeak-ng cannot speak (the message lists
what it can), a file that does not exist, impossible capture parameters.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.api.calls import PENDING, _raise_for
from gateway.api.errors import ApiError, bad_request, not_found
from gateway.core.actions import (
    ActionControl,
    ActionType,
    CaptureRequest,
    PromptRequest,
    StopOn,
    Target,
    TargetKind,
)
from gateway.core.calls import CallError
from gateway.core.conferences import ConferenceNotFound
from gateway.core.content import ContentType, PlayContent, Speech
from gateway.core.dialogs import DialogNotFound
from gateway.media.dtmf_sender import DIGITS
from gateway.media.voices import UnsupportedVoice, resolve_voice

router = APIRouter(prefix="/calls/1", tags=["actions"])

MAX_LOOPS = 1000
MAX_TEXT = 10_000  # characters: a say this long already lasts about ten minutes
MAX_WAIT_MS = 3_600_000  # an hour: the longest capture timeout or play cut
MAX_DTMF = 256  # characters of one send-dtmf: with W pauses, a few minutes at most


def _control(request: Request) -> ActionControl:
    return request.app.state.gateway.actions


Control = Annotated[ActionControl, Depends(_control)]
CustomData = dict[str, str] | None
Loops = Annotated[int, Field(ge=1, le=MAX_LOOPS)]
Milliseconds = Annotated[int, Field(ge=1, le=MAX_WAIT_MS)]
Rate = Annotated[float, Field(ge=0.5, le=2.0)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Preferences(_Body):
    voiceGender: Literal["FEMALE", "MALE"] | None = None
    voiceName: str | None = None


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class _Spoken(_Body):
    """What every spoken request has: ``text`` in a ``language``, at a ``speechRate``."""

    text: Text
    language: str
    speechRate: Rate = 1.0
    preferences: Preferences | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("must not be blank")
        return text

    def speech(self, prefix: str = "") -> Speech:
        preferences = self.preferences or Preferences()
        try:
            voice = resolve_voice(self.language, preferences.voiceGender, preferences.voiceName)
        except UnsupportedVoice as error:
            message = str(error)
            if error.field == "preferences.voiceName":  # the spec's 974 names: not listed
                message = f"{error.value!r} is not a voice name of the Calls API (docs/voices.md)"
            raise bad_request(prefix + error.field, message) from None
        return Speech(self.text, voice, self.speechRate)


class FileContent(_Body):
    type: Literal["FILE"]
    fileId: str = Field(min_length=1)


class UrlContent(_Body):
    type: Literal["URL"]
    fileUrl: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")


class RecordingContent(_Body):
    type: Literal["RECORDING"]
    fileId: str = Field(min_length=1)


class TextContent(_Spoken):
    type: Literal["TEXT"]


class TtyContent(_Body):
    type: Literal["TTY"]
    text: str


Content = Annotated[
    FileContent | UrlContent | RecordingContent | TextContent | TtyContent,
    Field(discriminator="type"),
]


def _content(body: Any, field: str) -> PlayContent:
    if isinstance(body, FileContent):
        return PlayContent(ContentType.FILE, file_id=body.fileId)
    if isinstance(body, RecordingContent):
        return PlayContent(ContentType.RECORDING, file_id=body.fileId)
    if isinstance(body, UrlContent):
        return PlayContent(ContentType.URL, url=body.fileUrl)
    if isinstance(body, TextContent):
        return PlayContent(ContentType.TEXT, speech=body.speech(f"{field}."))
    raise bad_request(f"{field}.type", "TTY (Baudot tones) is not supported by this gateway")


class DtmfTermination(_Body):
    type: Literal["DTMF"]
    terminator: str | None = None

    @field_validator("terminator")
    @classmethod
    def _digits(cls, terminator: str | None) -> str | None:
        if terminator is not None and any(char not in DIGITS for char in terminator.strip()):
            raise ValueError("must be DTMF digits (0-9, *, #, A-D)")
        return terminator.strip() if terminator else None

    def stop_on(self) -> StopOn:
        return StopOn(self.terminator)


class PlayBody(_Body):
    """``DialogPlayRequest`` and ``ConferencePlayRequest``."""

    loopCount: Loops = 1
    content: Content

    def request(self) -> PromptRequest:
        return PromptRequest(ActionType.PLAY, _content(self.content, "content"), self.loopCount)


class CallPlayBody(PlayBody):
    """``PublicPlayRequest``: a call's play may also be cut (``offset``, ``timeout``) and
    stopped by a key."""

    timeout: Milliseconds | None = None
    offset: Annotated[int, Field(ge=0, le=MAX_WAIT_MS)] = 0
    stopOn: DtmfTermination | None = None
    customData: CustomData = None

    def request(self) -> PromptRequest:
        return PromptRequest(
            ActionType.PLAY,
            _content(self.content, "content"),
            self.loopCount,
            self.offset,
            self.timeout,
            self.stopOn.stop_on() if self.stopOn else None,
            self.customData,
        )


class SayBody(_Spoken):
    """``DialogSayRequest`` and ``ConferenceSayRequest``."""

    loopCount: Loops = 1

    def request(self) -> PromptRequest:
        content = PlayContent(ContentType.TEXT, speech=self.speech())
        return PromptRequest(ActionType.SAY, content, self.loopCount)


class CallSayBody(SayBody):
    """``PublicSayRequest``."""

    stopOn: DtmfTermination | None = None
    customData: CustomData = None

    def request(self) -> PromptRequest:
        content = PlayContent(ContentType.TEXT, speech=self.speech())
        stop_on = self.stopOn.stop_on() if self.stopOn else None
        return PromptRequest(ActionType.SAY, content, self.loopCount, stop_on=stop_on,
                             custom_data=self.customData)  # fmt: skip


class StopPlayBody(_Body):
    customData: CustomData = None


class SendDtmfBody(_Body):
    dtmf: Annotated[str, Field(max_length=MAX_DTMF)]
    customData: CustomData = None


class CaptureDtmfBody(_Body):
    """``DtmfCaptureRequest``."""

    maxLength: Annotated[int, Field(ge=1, le=255)]
    timeout: Milliseconds
    terminator: str | None = Field(default=None, min_length=1, max_length=1)
    digitTimeout: Milliseconds | None = None
    playContent: Content | None = None
    customData: CustomData = None

    @field_validator("terminator")
    @classmethod
    def _digit(cls, terminator: str | None) -> str | None:
        if terminator is not None and terminator not in DIGITS:
            raise ValueError("must be one DTMF digit (0-9, *, #, A-D)")
        return terminator

    def request(self) -> CaptureRequest:
        play = _content(self.playContent, "playContent") if self.playContent else None
        return CaptureRequest(
            self.maxLength,
            self.timeout,
            self.terminator,
            self.digitTimeout,
            play,
            self.customData,
        )


def _error(error: CallError) -> ApiError:
    if isinstance(error, DialogNotFound):
        return not_found("Dialog", error.dialog_id)
    if isinstance(error, ConferenceNotFound):
        return not_found("Conference", error.conference_id)
    return _raise_for(error)


def _act(action: Any, *args: Any) -> dict[str, str]:
    try:
        action(*args)
    except CallError as error:
        raise _error(error) from None
    return PENDING


def _call(call_id: str) -> Target:
    return Target(TargetKind.CALL, call_id)


# -- calls ----------------------------------------------------------------------------------


@router.post("/calls/{call_id}/play")
async def play_on_call(call_id: str, body: CallPlayBody, control: Control) -> dict[str, str]:
    return _act(control.prompt, _call(call_id), body.request())


@router.post("/calls/{call_id}/say")
async def say_on_call(call_id: str, body: CallSayBody, control: Control) -> dict[str, str]:
    return _act(control.prompt, _call(call_id), body.request())


@router.post("/calls/{call_id}/stop-play")
async def stop_play_on_call(
    call_id: str, control: Control, body: StopPlayBody | None = None
) -> dict[str, str]:
    return _act(control.stop_prompt, _call(call_id), body.customData if body else None)


@router.post("/calls/{call_id}/send-dtmf")
async def send_dtmf(call_id: str, body: SendDtmfBody, control: Control) -> dict[str, str]:
    return _act(control.send_dtmf, call_id, body.dtmf, body.customData)


@router.post("/calls/{call_id}/capture/dtmf")
async def capture_dtmf(call_id: str, body: CaptureDtmfBody, control: Control) -> dict[str, str]:
    return _act(control.capture_dtmf, call_id, body.request())


# -- dialogs and conferences ----------------------------------------------------------------


def _routes(kind: TargetKind, path: str) -> None:
    """The same three routes for dialogs and conferences: all of their calls hear it."""

    @router.post(f"/{path}/{{target_id}}/play", name=f"play_on_{kind}")
    async def play(target_id: str, body: PlayBody, control: Control) -> dict[str, str]:
        return _act(control.prompt, Target(kind, target_id), body.request())

    @router.post(f"/{path}/{{target_id}}/say", name=f"say_on_{kind}")
    async def say(target_id: str, body: SayBody, control: Control) -> dict[str, str]:
        return _act(control.prompt, Target(kind, target_id), body.request())

    @router.post(f"/{path}/{{target_id}}/stop-play", name=f"stop_play_on_{kind}")
    async def stop_play(target_id: str, control: Control) -> dict[str, str]:
        return _act(control.stop_prompt, Target(kind, target_id))


_routes(TargetKind.DIALOG, "dialogs")
_routes(TargetKind.CONFERENCE, "conferences")
