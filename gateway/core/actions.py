"""In-call actions: say, play, stop-play, capture DTMF and send DTMF, on calls, dialogs and
conferences, with the SAY_FINISHED, PLAY_FINISHED, DTMF_CAPTURED and ERROR events.

A *prompt* (a say or a play) is content loaded off the event loop (synthesised, decoded,
fetched), then a :class:`~gateway.media.player.Player` played into the media plane: to a call
or both legs of a dialog through :class:`~gateway.core.bridging.MediaBridges` (which pulls a
bypassed leg back into the path), to every participant of a conference through its room.
One prompt per call, dialog or conference: a new one ends the one playing.

Digits reach :meth:`ActionControl._on_digit` from the adapters (RFC 4733) and from in-band
detection, which runs on a leg while something wants its digits: a capture, or a prompt with
``stopOn`` (its :class:`~gateway.media.dtmf_detect.DtmfDetector` taps the leg, so a bypassed
leg comes back into the path). A digit goes to the leg's capture, else stops a ``stopOn``
prompt (the terminator, or any digit), else is reported by itself (an unsolicited
DTMF_CAPTURED). An endpoint that sends a digit both ways gives it once: the same digit by the
other way within ``DUPLICATE_WINDOW`` is dropped.

Everything an action holds ends before its call's final event (``observe_before``): a hangup
in the middle of a prompt publishes its FINISHED with ``playedCompletely`` false first, and
leaves no task, timer, tap or overlay of the action behind (a URL download it started is
shared through the audio cache and may still finish into it). Joining a conference ends a
call's actions too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from gateway.core.bridging import MediaBridges
from gateway.core.calls import (
    ENDING,
    JOINING_CONFERENCE,
    CallControl,
    InvalidRequest,
    WrongState,
    order_key,
)
from gateway.core.conferences import ConferenceControl
from gateway.core.content import ContentLoader, PlayContent
from gateway.core.dialogs import DialogControl, DialogState, dialog_envelope
from gateway.core.leg import Leg, LegState
from gateway.core.ports import ContentUnavailable, EventSink
from gateway.core.views import call_envelope
from gateway.media.dtmf_detect import DtmfDetector
from gateway.media.dtmf_sender import DtmfSender, invalid_dtmf
from gateway.media.player import Player
from gateway.timeutil import format_time, utcnow

log = logging.getLogger(__name__)

PLAYABLE_STATES = (LegState.PRE_ESTABLISHED, LegState.ESTABLISHED)
DUPLICATE_WINDOW = 0.5  # seconds: a digit seen in-band and by RFC 4733 within this is one


class ActionType(StrEnum):
    """The ERROR event's ``actionType`` values that the gateway's actions use."""

    PLAY = "PLAY"
    SAY = "SAY"
    SEND_DTMF = "SEND_DTMF"
    CAPTURE_DTMF = "CAPTURE_DTMF"


class TargetKind(StrEnum):
    CALL = "call"
    DIALOG = "dialog"
    CONFERENCE = "conference"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    id: str


@dataclass(frozen=True)
class StopOn:
    """``stopOn`` of type DTMF: any digit stops the prompt, or only those in ``terminator``."""

    terminator: str | None = None

    def stops(self, digit: str) -> bool:
        return not self.terminator or digit in self.terminator


@dataclass(frozen=True)
class PromptRequest:
    action: ActionType  # SAY or PLAY
    content: PlayContent
    loops: int = 1
    offset_ms: int = 0
    timeout_ms: int | None = None
    stop_on: StopOn | None = None
    custom_data: dict[str, str] | None = None


@dataclass(frozen=True)
class CaptureRequest:
    max_length: int
    timeout_ms: int
    terminator: str | None = None
    digit_timeout_ms: int | None = None
    play: PlayContent | None = None
    custom_data: dict[str, str] | None = None


@dataclass(eq=False)
class _Capture:
    call_id: str
    request: CaptureRequest
    digits: str = ""
    timer: asyncio.TimerHandle | None = None
    prompt: _Prompt | None = None
    played: tuple[int, bool] | None = None  # its playContent: (ms played, completely)


@dataclass(eq=False)
class _Prompt:
    target: Target
    request: PromptRequest
    legs: tuple[str, ...]  # the calls that hear it (none for a conference: its room does)
    capture: _Capture | None = None  # the capture whose playContent this is
    player: Player | None = None
    loading: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Listener:
    """In-band detection on one leg, for as many actions as want its digits."""

    tap: Callable[[Sequence[str], np.ndarray], None]
    users: int = 0


class ActionControl:
    def __init__(
        self,
        calls: CallControl,
        dialogs: DialogControl,
        conferences: ConferenceControl,
        bridges: MediaBridges,
        content: ContentLoader,
        sink: EventSink,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._calls = calls
        self._dialogs = dialogs
        self._conferences = conferences
        self._bridges = bridges
        self.content = content
        self._sink = sink
        self._clock = clock
        self._prompts: dict[Target, _Prompt] = {}
        self._captures: dict[str, _Capture] = {}
        self._senders: dict[str, DtmfSender] = {}
        self._listeners: dict[str, _Listener] = {}
        # One detector for every listened leg, fed once per tick with all their frames: a
        # numpy pass costs about the same for one leg as for a hundred.
        self._detector = DtmfDetector()
        self._heard: dict[str, np.ndarray] = {}  # this tick's frame of each listened leg
        self._last_digit: dict[str, tuple[float, str, bool]] = {}  # leg: (time, digit, in-band)
        self._tasks: set[asyncio.Task[None]] = set()
        calls.observe_before(self._before_change)
        calls.observe_dtmf(self._on_digit)
        conferences.observe_end(self._conference_ended)

    # -- verbs ----------------------------------------------------------------------------

    def prompt(self, target: Target, request: PromptRequest) -> None:
        """Say or play on a call, dialog or conference; FINISHED (or ERROR) follows."""
        legs = self._hearers(target)
        self.content.check(request.content)
        if target.kind is TargetKind.CALL:
            self._calls.update_custom_data(target.id, request.custom_data)
        self._start_prompt(target, request, legs)

    def stop_prompt(self, target: Target, custom_data: dict[str, str] | None = None) -> None:
        """stop-play: the prompt playing (if any) ends, its FINISHED not played completely."""
        self._hearers(target)
        if target.kind is TargetKind.CALL:
            self._calls.update_custom_data(target.id, custom_data)
        prompt = self._prompts.get(target)
        if prompt is not None:
            self._finish_prompt(prompt, completely=False)

    def capture_dtmf(self, call_id: str, request: CaptureRequest) -> None:
        """Collect digits until ``maxLength``, the terminator or a timeout: DTMF_CAPTURED."""
        target = Target(TargetKind.CALL, call_id)
        self._hearers(target)
        if call_id in self._captures:
            raise WrongState(f"Call {call_id!r} is already capturing DTMF.")
        if request.play is not None:
            self.content.check(request.play, "playContent")
        self._calls.update_custom_data(call_id, request.custom_data)
        capture = self._captures[call_id] = _Capture(call_id, request)
        self._listen(call_id)
        if request.play is None:
            self._arm(capture, request.timeout_ms)
            return
        prompt = PromptRequest(ActionType.PLAY, request.play)
        capture.prompt = self._start_prompt(target, prompt, (call_id,), capture)

    def send_dtmf(self, call_id: str, dtmf: str, custom_data: dict[str, str] | None = None) -> None:
        """Send digits to the call's endpoint: RFC 4733 where it agreed on it, else tones."""
        self._hearers(Target(TargetKind.CALL, call_id))
        reason = invalid_dtmf(dtmf)
        if reason is not None:
            raise InvalidRequest({"dtmf": [reason]})
        if call_id in self._senders:
            raise WrongState(f"Call {call_id!r} is already sending DTMF.")
        self._calls.update_custom_data(call_id, custom_data)
        loop = asyncio.get_running_loop()

        def out_of_band(digit: str) -> bool:
            return self._calls.send_dtmf(call_id, digit, 100)

        sender = DtmfSender(dtmf, out_of_band, lambda: loop.call_soon(self._sent, call_id))
        self._senders[call_id] = sender
        self._bridges.play(call_id, sender)

    # -- targets --------------------------------------------------------------------------

    def _hearers(self, target: Target) -> tuple[str, ...]:
        """The calls an action on ``target`` plays to; raises when it cannot take one now."""
        if target.kind is TargetKind.CALL:
            self._playable_call(target.id)
            return (target.id,)
        if target.kind is TargetKind.DIALOG:
            dialog = self._dialogs.get(target.id)
            if dialog.state is not DialogState.ESTABLISHED:
                raise WrongState(f"Dialog {target.id!r} is {dialog.state}, not ESTABLISHED.")
            for call_id in (dialog.parent_call_id, dialog.child_call_id):
                self._playable_call(call_id, in_dialog=True)
            return (dialog.parent_call_id, dialog.child_call_id)
        conference = self._conferences.get(target.id)
        if conference.end_time is not None:
            raise WrongState(f"Conference {target.id!r} has ended.")
        return ()

    def _playable_call(self, call_id: str, in_dialog: bool = False) -> Leg:
        leg = self._calls.get(call_id)
        if self._calls.live(call_id) is None or leg.state not in PLAYABLE_STATES:
            raise WrongState(f"Call {call_id!r} is {leg.state}: it has no audio to act on.")
        if leg.conference_id is not None and not in_dialog:
            raise WrongState(
                f"Call {call_id!r} is in conference {leg.conference_id!r}: act on the "
                "conference instead."
            )
        if self._calls.media_port(call_id) is None:
            raise WrongState(f"Call {call_id!r} has no media yet.")
        return leg

    # -- prompts --------------------------------------------------------------------------

    def _start_prompt(
        self,
        target: Target,
        request: PromptRequest,
        legs: tuple[str, ...],
        capture: _Capture | None = None,
    ) -> _Prompt:
        current = self._prompts.get(target)
        if current is not None:
            self._finish_prompt(current, completely=False)
        prompt = self._prompts[target] = _Prompt(target, request, legs, capture)
        if request.stop_on is not None:
            for leg_id in legs:
                self._listen(leg_id)
        prompt.loading = self._spawn(self._load(prompt))
        return prompt

    async def _load(self, prompt: _Prompt) -> None:
        try:
            clip = await self.content.load(prompt.request.content)
        except ContentUnavailable as error:
            prompt.loading = None
            self._fail_prompt(prompt, error)
            return
        prompt.loading = None
        if self._prompts.get(prompt.target) is not prompt:
            return
        loop = asyncio.get_running_loop()
        request = prompt.request
        player = Player(
            clip,
            request.loops,
            request.offset_ms,
            request.timeout_ms,
            on_done=lambda: loop.call_soon(self._played_out, prompt),
        )
        prompt.player = player
        if prompt.target.kind is TargetKind.CONFERENCE:
            playing = self._conferences.play(prompt.target.id, player)
        else:
            playing = all([self._bridges.play(leg_id, player) for leg_id in prompt.legs])
        if not playing:  # its media went meanwhile
            self._fail_prompt(prompt, ContentUnavailable("The call has no media to play to."))

    def _fail_prompt(self, prompt: _Prompt, error: ContentUnavailable) -> None:
        if self._prompts.get(prompt.target) is not prompt:
            return
        action = ActionType.CAPTURE_DTMF if prompt.capture else prompt.request.action
        properties = {"actionType": action, "errorCode": error.error_code}
        self._publish(prompt.target, "ERROR", {**properties, "errorDetails": error.details})
        self._finish_prompt(prompt, completely=False, report=False)

    def _played_out(self, prompt: _Prompt) -> None:
        self._finish_prompt(prompt, completely=True)

    def _finish_prompt(
        self, prompt: _Prompt, completely: bool, digit: str | None = None, report: bool = True
    ) -> None:
        """End the prompt (if it is still the target's) and say how it went."""
        if self._prompts.get(prompt.target) is not prompt:
            return
        del self._prompts[prompt.target]
        if prompt.loading is not None:
            prompt.loading.cancel()
        player = prompt.player
        if player is not None:
            player.stop()
            if prompt.target.kind is TargetKind.CONFERENCE:
                self._conferences.unplay(prompt.target.id, player)
            else:
                for leg_id in prompt.legs:
                    self._bridges.unplay(leg_id, player)
        if prompt.request.stop_on is not None:
            for leg_id in prompt.legs:
                self._unlisten(leg_id)
        played = player.played_ms if player is not None else 0
        capture = prompt.capture
        if capture is not None:
            capture.prompt = None
            capture.played = (played, completely)
            if self._captures.get(capture.call_id) is capture:
                self._arm(capture, capture.request.timeout_ms)  # input is awaited from now
            return
        if report:
            self._publish(prompt.target, f"{prompt.request.action}_FINISHED", {
                "duration": played, "playedCompletely": completely, "capturedDtmf": digit,
                "customData": prompt.request.custom_data})  # fmt: skip

    # -- DTMF in --------------------------------------------------------------------------

    def _on_digit(self, leg: Leg, digit: str) -> None:
        """A digit from the endpoint, out of band (the adapters report those)."""
        if not self._duplicate(leg.id, digit, inband=False):
            self._route(leg, digit)

    def _inband_digit(self, leg_id: str, digit: str) -> None:
        leg = self._calls.live(leg_id)
        if leg is None or leg_id not in self._listeners:
            return  # ended, or nothing listens any more
        if not self._duplicate(leg_id, digit, inband=True):
            self._route(leg, digit)

    def _duplicate(self, leg_id: str, digit: str, inband: bool) -> bool:
        now = asyncio.get_running_loop().time()
        last = self._last_digit.get(leg_id)
        if (
            last is not None
            and last[1:] == (digit, not inband)
            and now - last[0] < DUPLICATE_WINDOW
        ):
            return True
        self._last_digit[leg_id] = (now, digit, inband)
        return False

    def _route(self, leg: Leg, digit: str) -> None:
        capture = self._captures.get(leg.id)
        if capture is not None:
            self._captured(capture, digit)
            return
        prompt = self._prompts.get(Target(TargetKind.CALL, leg.id))
        if prompt is not None and prompt.request.stop_on is not None:
            if prompt.request.stop_on.stops(digit):
                self._finish_prompt(prompt, completely=False, digit=digit)
            return  # a stopOn prompt takes the digits that do not stop it, too
        self._publish(Target(TargetKind.CALL, leg.id), "DTMF_CAPTURED", {
            "dtmf": digit, "timeout": False})  # fmt: skip

    def _captured(self, capture: _Capture, digit: str) -> None:
        if capture.prompt is not None:  # barge-in: the first key stops the prompt
            self._finish_prompt(capture.prompt, completely=False)
        request = capture.request
        if request.terminator and digit in request.terminator:
            self._end_capture(capture, timed_out=False)
            return
        capture.digits += digit
        if len(capture.digits) >= request.max_length:
            self._end_capture(capture, timed_out=False)
        else:
            self._arm(capture, request.digit_timeout_ms or request.timeout_ms)

    def _arm(self, capture: _Capture, milliseconds: int) -> None:
        if capture.timer is not None:
            capture.timer.cancel()
        loop = asyncio.get_running_loop()
        capture.timer = loop.call_later(milliseconds / 1000, self._end_capture, capture, True)

    def _end_capture(self, capture: _Capture, timed_out: bool) -> None:
        if self._captures.get(capture.call_id) is not capture:
            return
        del self._captures[capture.call_id]
        if capture.timer is not None:
            capture.timer.cancel()
            capture.timer = None
        if capture.prompt is not None:
            self._finish_prompt(capture.prompt, completely=False)
        self._unlisten(capture.call_id)
        properties: dict[str, Any] = {
            "dtmf": capture.digits,
            "timeout": timed_out,
            "customData": capture.request.custom_data,
        }
        if capture.request.play is not None:
            played, completely = capture.played or (0, False)
            properties["playedContentProperties"] = {
                "duration": played,
                "playedCompletely": completely,
            }
        self._publish(Target(TargetKind.CALL, capture.call_id), "DTMF_CAPTURED", properties)

    def _listen(self, leg_id: str) -> None:
        listener = self._listeners.get(leg_id)
        if listener is None:
            loop = asyncio.get_running_loop()

            def tap(legs: Sequence[str], frames: np.ndarray) -> None:
                if not self._heard:  # the tick's first: detect once the tick is over
                    loop.call_soon(self._detect)
                self._heard[leg_id] = frames[legs.index(leg_id)].copy()

            listener = self._listeners[leg_id] = _Listener(tap)
            self._bridges.tap(leg_id, tap)
        listener.users += 1

    def _detect(self) -> None:
        if not self._heard:
            return  # its only leg stopped being listened to meanwhile
        keys = sorted(self._heard)  # a stable order: the detector keeps state by row
        frames = np.stack([self._heard[key] for key in keys])
        self._heard.clear()
        for tone in self._detector.update(keys, frames):
            if not tone.end:  # a digit counts from its start, as RFC 4733's do
                self._inband_digit(str(tone.key), tone.digit)

    def _unlisten(self, leg_id: str) -> None:
        listener = self._listeners.get(leg_id)
        if listener is None:
            return
        listener.users -= 1
        if listener.users <= 0:
            del self._listeners[leg_id]
            self._bridges.untap(leg_id, listener.tap)
            self._heard.pop(leg_id, None)
            self._detector.forget(leg_id)

    # -- DTMF out -------------------------------------------------------------------------

    def _sent(self, call_id: str) -> None:
        sender = self._senders.pop(call_id, None)
        if sender is not None:
            self._bridges.unplay(call_id, sender)

    # -- ends -----------------------------------------------------------------------------

    def _before_change(self, leg: Leg, change: str) -> None:
        """A call ending or joining a conference ends what acts on it, events first."""
        if change not in (ENDING, JOINING_CONFERENCE):
            return
        capture = self._captures.get(leg.id)
        if capture is not None:
            self._end_capture(capture, timed_out=False)
        for prompt in list(self._prompts.values()):
            if leg.id in prompt.legs:
                self._finish_prompt(prompt, completely=False)
        sender = self._senders.get(leg.id)
        if sender is not None:
            sender.finished = True
            self._sent(leg.id)
        if change == ENDING:
            self._last_digit.pop(leg.id, None)

    def _conference_ended(self, conference_id: str) -> None:
        prompt = self._prompts.get(Target(TargetKind.CONFERENCE, conference_id))
        if prompt is not None:
            self._finish_prompt(prompt, completely=False)

    async def loaded(self) -> None:
        """Wait until every prompt asked for is playing (or has failed): tests."""
        await asyncio.gather(*[p.loading for p in self._prompts.values() if p.loading],
                             return_exceptions=True)  # fmt: skip

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- events ---------------------------------------------------------------------------

    def _publish(self, target: Target, event_type: str, properties: dict[str, Any]) -> None:
        properties = {key: value for key, value in properties.items() if value is not None}
        moment = self._clock()
        if target.kind is TargetKind.CALL:
            leg = self._calls.get(target.id)
            self._sink.publish(call_envelope(event_type, leg, moment, properties), order_key(leg))
        elif target.kind is TargetKind.DIALOG:
            dialog = self._dialogs.get(target.id)
            event = dialog_envelope(event_type, dialog, moment, properties)
            self._sink.publish(event, dialog.parent_call_id)
        else:
            conference = self._conferences.get(target.id)
            event = {
                "conferenceId": conference.id,
                "timestamp": format_time(moment),
                "callsConfigurationId": conference.calls_configuration_id,
                "platform": conference.platform,
                "type": event_type,
                "properties": properties,
            }
            event = {key: value for key, value in event.items() if value is not None}
            self._sink.publish(event, conference.id)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
