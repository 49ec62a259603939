"""The simulated PSTN as a leg adapter: scripted phones behind numbers, and scripted callers.

Each simulated call runs one task that plays its number's script (ring, answer, fail...) and
reports to the core through its callbacks, exactly as a SIP trunk reports responses.

A phone keys digits (``key_digits``) on the same schedule as the gateway sends them
(``gateway.media.dtmf_sender``: 100 ms per key, 100 ms after it, ``w``/``W`` half a second and a
second of pause): in-band as tones in front of what it was sending, played as the media
plane reads the phone (so only while it is in a bridge), or as if RFC 4733 events arrived,
reported through ``CallControl.on_dtmf`` on a timer of its own. One typing task per call
types its requests one after another and is cancelled when the call ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gateway.core import errors
from gateway.core.calls import CallControl, WrongState
from gateway.core.errors import ErrorCode
from gateway.core.leg import HangupSource, Leg
from gateway.core.numbering import E164
from gateway.core.ports import MediaRedirectFailed
from gateway.media.dtmf_sender import DtmfSender
from gateway.media.frame import FRAME_MS
from gateway.media.port import NativeMedia
from gateway.timeutil import format_time, utcnow
from trunks.pstn.audio import (
    FRAME,
    PhoneAudio,
    SourceError,
    phone_synthesizer,
    silence_frames,
    tone_frames,
)
from trunks.pstn.greetings import Greeting, human_greeting, machine_greeting
from trunks.pstn.numbers import Behaviour, DtmfMode, SimulatedNumber
from trunks.pstn.sources import FileSamples

log = logging.getLogger(__name__)

# Ended calls stay inspectable through the simulator API; the oldest are forgotten first.
ENDED_CALLS_KEPT = 1000


@dataclass
class SimulatedCall:
    """What one simulated phone did and saw, keyed by the leg's callId."""

    call_id: str
    caller: str | None
    callee: str
    role: str  # "callee": the platform called it; "caller": it called the platform
    behaviour: str | None = None
    state: str = "dialling"
    end_cause: str | None = None
    log: list[dict[str, str]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    audio: PhoneAudio = field(default_factory=PhoneAudio)
    takes_dtmf: DtmfMode = DtmfMode.INBAND  # how the digits the platform sends arrive
    dtmf_received: list[str] = field(default_factory=list)  # those that came out of band
    typing: asyncio.Task[None] | None = None
    to_type: deque[tuple[str, DtmfMode]] = field(default_factory=deque)

    def note(self, state: str, what: str | None = None) -> None:
        self.state = state
        self.log.append({"time": format_time(utcnow()) or "", "event": what or state})

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "callId": self.call_id,
            "from": self.caller,
            "to": self.callee,
            "role": self.role,
            "state": self.state,
            "log": list(self.log),
        }
        if self.behaviour:
            body["behaviour"] = self.behaviour
        if self.end_cause:
            body["endCause"] = self.end_cause
        return body


class SimulatedPstn:
    """The :class:`~gateway.core.ports.LegAdapter` for PHONE endpoints."""

    endpoint_type = "PHONE"

    def __init__(
        self,
        control: CallControl,
        numbers: Iterable[SimulatedNumber] = (),
        *,
        claim_all: bool = True,
        files: FileSamples | None = None,
    ) -> None:
        self._control = control
        self.files = files  # the uploaded audio files that sources may name
        # With no carrier, unknown numbers are ours too: they fail with DESTINATION_NOT_FOUND.
        self.claim_all = claim_all
        self._numbers: dict[str, SimulatedNumber] = {n.number: n for n in numbers}
        self._calls: OrderedDict[str, SimulatedCall] = OrderedDict()
        control.register(self)

    # -- numbers --------------------------------------------------------------------------

    def add_number(self, number: SimulatedNumber) -> None:
        self._numbers[number.number] = number

    def has_file(self, file_id: str) -> bool:
        """Whether a source may name this uploaded file."""
        if self.files is None:
            return False
        try:
            self.files.get(file_id)
        except Exception:  # AudioFileNotFound, from the core's library
            return False
        return True

    def numbers(self) -> list[SimulatedNumber]:
        return sorted(self._numbers.values(), key=lambda n: n.number)

    # -- calls the platform places --------------------------------------------------------

    def serves(self, endpoint: dict[str, Any]) -> bool:
        number = str(endpoint.get("phoneNumber") or "").lstrip("+")
        return self.claim_all or number in self._numbers

    def check_endpoint(self, endpoint: dict[str, Any]) -> dict[str, list[str]]:
        number = endpoint.get("phoneNumber")
        if not number:
            return {"endpoint.phoneNumber": ["must not be null"]}
        if not isinstance(number, str) or not E164.match(number):
            return {"endpoint.phoneNumber": ["must be a number in E.164 format"]}
        return {}

    async def originate(self, leg: Leg) -> None:
        callee = (leg.to or "").lstrip("+")
        number = self._numbers.get(callee)
        call = SimulatedCall(
            leg.id, leg.from_, callee, "callee", number.behaviour.value if number else None
        )
        if number is not None:
            call.takes_dtmf = number.dtmf
        self._remember(call)
        call.task = asyncio.get_running_loop().create_task(self._answer_script(call, number))

    async def send_ringing(self, leg: Leg) -> None:
        self._call(leg.id).note("ringing", "heard ringing")

    async def pre_answer(self, leg: Leg) -> None:
        self._call(leg.id).note("early-media")
        self._control.on_early_media(leg.id)

    async def answer(self, leg: Leg) -> None:
        self._call(leg.id).note("connected", "answered by the platform")
        self._control.on_answered(leg.id)

    async def hangup(self, leg: Leg, cause: ErrorCode) -> None:
        call = self._calls.get(leg.id)
        if call is None:
            return
        self._stop_script(call)
        call.end_cause = cause.name
        call.note("ended", f"released by the platform: {cause.name}")

    # -- calls the simulated phones place -------------------------------------------------

    def place_call(self, caller: str, callee: str) -> SimulatedCall:
        """A simulated caller dials ``callee``; raises NotRouted if no configuration owns it."""
        leg = self._control.receive_call(
            self, {"type": "PHONE", "phoneNumber": caller}, caller, callee.lstrip("+")
        )
        call = SimulatedCall(leg.id, caller, leg.to or callee, "caller")
        if caller in self._numbers:  # a simulated number calling takes DTMF as it is set to
            call.takes_dtmf = self._numbers[caller].dtmf
        call.note("ringing", "dialled; the platform is alerting")
        self._remember(call)
        return call

    def hang_up_phone(self, call_id: str) -> SimulatedCall:
        """The simulated phone hangs up: a caller abandons, a callee ends the call."""
        call = self._call(call_id)
        if call.state == "ended":
            raise WrongState(f"Simulated call {call_id!r} has already ended.")
        self._stop_script(call)
        leg = self._control.get(call_id)
        cause = errors.CANCELLED if leg.state.is_alerting else errors.NORMAL_HANGUP
        call.end_cause = cause.name
        call.note("ended", "hung up by the phone")
        self._control.on_ended(call_id, cause, HangupSource.ENDPOINT)
        return call

    def media_port(self, leg: Leg) -> PhoneAudio | None:
        call = self._calls.get(leg.id)
        return call.audio if call is not None else None

    def native_media(self, leg: Leg) -> None:
        """Simulated phones have no RTP of their own: they are always mixed."""
        return None

    async def redirect_media(self, leg: Leg, target: NativeMedia | None) -> NativeMedia:
        raise MediaRedirectFailed("a simulated phone's media cannot leave the gateway")

    def send_dtmf(self, leg: Leg, digit: str, duration_ms: int) -> bool:
        """Taken out of band only by phones whose number says ``dtmf: rfc4733``; the others
        hear the core's tones."""
        call = self._calls.get(leg.id)
        if call is None or call.state == "ended" or call.takes_dtmf is not DtmfMode.RFC4733:
            return False
        call.dtmf_received.append(digit)
        return True

    def key_digits(self, call_id: str, digits: str, mode: DtmfMode) -> SimulatedCall:
        """The phone keys ``digits`` (checked by the caller: 0-9*#A-D, w, W), after what it
        is still keying. Raises KeyError for an unknown or ended call, WrongState before it
        is answered or has early media."""
        call = self._call(call_id)
        if call.state == "ended":
            raise KeyError(call_id)
        if call.state not in ("early-media", "connected"):
            raise WrongState(f"Simulated call {call_id!r} is {call.state}, not answered yet.")
        call.to_type.append((digits, mode))
        if call.typing is None:
            call.typing = asyncio.get_running_loop().create_task(self._type(call))
        return call

    def get_call(self, call_id: str) -> SimulatedCall:
        return self._call(call_id)

    async def close(self) -> None:
        tasks = [
            task
            for call in self._calls.values()
            for task in (call.task, call.typing)
            if task is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals ------------------------------------------------------------------------

    def _call(self, call_id: str) -> SimulatedCall:
        try:
            return self._calls[call_id]
        except KeyError:
            raise KeyError(call_id) from None

    def _remember(self, call: SimulatedCall) -> None:
        self._calls[call.call_id] = call
        while len(self._calls) > ENDED_CALLS_KEPT:
            oldest_id, oldest = next(iter(self._calls.items()))
            if oldest.state != "ended":
                break
            del self._calls[oldest_id]

    @staticmethod
    def _stop_script(call: SimulatedCall) -> None:
        """The call ends: its script and its typing stop."""
        for task in (call.task, call.typing):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        call.task = call.typing = None
        call.to_type.clear()

    async def _type(self, call: SimulatedCall) -> None:
        try:
            while call.to_type:
                digits, mode = call.to_type.popleft()
                if mode is DtmfMode.RFC4733:
                    await self._type_events(call, digits)
                else:
                    await self._type_tones(call, digits)
        finally:
            if call.typing is asyncio.current_task():
                call.typing = None

    async def _type_events(self, call: SimulatedCall, digits: str) -> None:
        """Each key reported at the time its first event would arrive: the sender's schedule
        stepped by a timer on an absolute timeline, as the media plane's clock is."""

        def report(digit: str) -> bool:
            self._control.on_dtmf(call.call_id, digit)
            return True

        sender = DtmfSender(digits, report)
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not sender.finished:
            sender()
            due += FRAME_MS / 1000
            await asyncio.sleep(max(0.0, due - loop.time()))

    @staticmethod
    async def _type_tones(call: SimulatedCall, digits: str) -> None:
        """The tones go in front of what the phone sends; done once the media plane has
        read them all (or a new source replaced them)."""
        done = asyncio.Event()
        sender = DtmfSender(digits, lambda digit: False)

        def frames() -> Iterator[np.ndarray | None]:
            try:
                while not sender.finished:
                    yield sender()
            finally:
                done.set()

        call.audio.interject(frames())
        await done.wait()

    async def _answer_audio(
        self, call: SimulatedCall, number: SimulatedNumber
    ) -> Iterator[np.ndarray]:
        """What the phone sends once it answers: its ``source``, a person's or a machine's
        greeting, or silence (a person who says nothing until told to)."""
        seed = number.options.get("seed", 0)
        try:
            if number.source is not None:
                return await number.source.frames(self.files)
            if number.behaviour is Behaviour.HUMAN:
                return greeting_frames(await human_greeting(seed, phone_synthesizer()))
            if number.behaviour is Behaviour.MACHINE:
                beep = bool(number.options["beep"]) if "beep" in number.options else None
                greeting = await machine_greeting(seed, phone_synthesizer(), beep)
                return greeting_frames(greeting)
        except SourceError as error:
            call.note(call.state, f"its source failed: {error}")  # logged; its state stays
            log.warning("simulated phone %s: its source failed: %s", call.callee, error)
        return silence_frames()

    async def _answer_script(self, call: SimulatedCall, number: SimulatedNumber | None) -> None:
        """What the called phone does; each step reports to the core like a SIP response."""
        control, leg_id = self._control, call.call_id

        def end(cause: ErrorCode, what: str) -> None:
            call.end_cause = cause.name
            call.note("ended", what)
            self._stop_script(call)
            control.on_ended(leg_id, cause, HangupSource.ENDPOINT)

        if number is None:
            await asyncio.sleep(0)
            end(errors.DESTINATION_NOT_FOUND, "no such number")
            return
        options, kind = number.options, number.behaviour
        # What it says on answering is made (spoken, loaded) while it rings.
        answering = asyncio.ensure_future(self._answer_audio(call, number))
        try:
            await self._play_script(call, kind, options, answering, end)
        finally:
            answering.cancel()

    async def _play_script(
        self,
        call: SimulatedCall,
        kind: Behaviour,
        options: dict[str, int],
        answering: asyncio.Future[Iterator[np.ndarray]],
        end: Callable[[ErrorCode, str], None],
    ) -> None:
        control, leg_id = self._control, call.call_id

        async def wait(ms: int) -> None:
            await asyncio.sleep(ms / 1000)

        if "ringAfterMs" in options:
            await wait(options["ringAfterMs"])
            call.note("ringing")
            control.on_ringing(leg_id)
        if kind is Behaviour.BUSY:
            await wait(options["delayMs"])
            end(errors.BUSY, "busy")
        elif kind is Behaviour.REJECT:
            await wait(options["delayMs"])
            end(errors.REJECTED, "rejected")
        elif kind is Behaviour.FAIL:
            await wait(options["delayMs"])
            end(errors.from_sip_status(options["sipStatus"]), f"failed: {options['sipStatus']}")
        elif kind is Behaviour.EARLY_MEDIA:
            call.note("early-media", "playing an announcement")
            call.audio.play(tone_frames(options["announcementHz"]))
            control.on_early_media(leg_id)
            await wait(options["earlyMediaMs"])
        elif kind is Behaviour.NO_ANSWER:
            return
        else:
            await wait(options["answerAfterMs"])
        first_words = await answering  # ready by now, unless speaking it takes longer
        if call.state == "ended":
            return  # hung up while it rang (or while its words were made)
        call.note("connected", "answered")
        call.audio.play(first_words)
        control.on_answered(leg_id)
        if kind is Behaviour.HANGUP_AFTER:
            await wait(options["hangupAfterMs"])
            end(errors.NORMAL_HANGUP, "hung up")


def greeting_frames(greeting: Greeting, tail_seconds: float = 10.0) -> Iterator[np.ndarray]:
    """The greeting, then its line's noise floor for as long as the call lasts (a stretch of
    it, repeated)."""
    tail = greeting.tail(tail_seconds)
    audio = np.concatenate([greeting.samples, tail])
    usable = len(audio) // FRAME * FRAME
    yield from audio[:usable].reshape(-1, FRAME)
    tail_frames = tail[: len(tail) // FRAME * FRAME].reshape(-1, FRAME)
    while True:
        yield from tail_frames
