"""Answering machine detection on the calls that ask for it (``machineDetection``).

From the answer on, what the called party sends is fed, frame by frame, to a
:class:`~gateway.media.amd.MachineDetector`: MACHINE_DETECTION_FINISHED (HUMAN or MACHINE, with
the confidence of each) comes within ``detectionTime``; after MACHINE, with a
``messageDetectionTimeout``, MACHINE_MESSAGE_DETECTION_FINISHED says how the greeting ended
(BEEP, SILENCE or TIMEOUT). Listening taps the leg, which pulls a bypassed dialog into the media
path; the tap goes when detection ends, and the media may go back to bypass. A leg of a
conference is heard through the room's tap instead. A call that ends (or moves into a
conference, or leaves the one it is heard in) while detection runs gets the matching
``*_FAILED`` before its own events.

The detectors of every leg are fed once per tick, after the media plane's tick, from the frames
the taps kept: the tick itself only copies a row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from gateway.core.bridging import MediaBridges
from gateway.core.calls import ENDING, JOINING_CONFERENCE, CallControl, order_key
from gateway.core.conferences import ConferenceControl
from gateway.core.leg import Leg
from gateway.core.ports import EventSink
from gateway.core.views import call_envelope
from gateway.media.amd import AmdSettings, MachineDetector, MachineVerdict, MessageEnd
from gateway.timeutil import utcnow

log = logging.getLogger(__name__)

OVERDUE_GRACE = 2.0  # seconds after the latest moment a run could decide: its audio stopped


@dataclass
class _Run:
    leg_id: str
    detector: MachineDetector
    tap: Callable[[Sequence[str], np.ndarray], None]
    conference_id: str | None  # heard through this room's tap, else through the leg's
    verdict: MachineVerdict | None = None
    overdue: asyncio.TimerHandle | None = None  # fails a run whose audio stopped coming


class MachineDetection:
    def __init__(
        self,
        calls: CallControl,
        bridges: MediaBridges,
        conferences: ConferenceControl,
        sink: EventSink,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._calls = calls
        self._bridges = bridges
        self._conferences = conferences
        self._sink = sink
        self._clock = clock
        self._runs: dict[str, _Run] = {}
        self._heard: dict[str, np.ndarray] = {}  # this tick's frame of each leg listened to
        calls.observe(self._on_call_event)
        calls.observe_before(self._before_change)
        conferences.observe_participants(self._on_participant)

    @property
    def running(self) -> int:
        return len(self._runs)

    # -- starting -------------------------------------------------------------------------

    def _on_call_event(self, leg: Leg, event: str) -> None:
        request = leg.machine_detection_request
        if event != "CALL_ESTABLISHED" or request is None or leg.id in self._runs:
            return
        leg.machine_detection_request = None  # once per call, even if it fails to start
        settings = AmdSettings(request.detection_time, request.message_timeout or None)
        loop = asyncio.get_running_loop()
        leg_id = leg.id

        def tap(legs: Sequence[str], frames: np.ndarray) -> None:
            if leg_id not in legs:
                return  # a room's tick before the call's audio is in it
            if not self._heard:  # the tick's first: detect once the tick is over
                loop.call_soon(self._detect)
            self._heard[leg_id] = frames[legs.index(leg_id)].copy()

        run = _Run(leg_id, MachineDetector(settings), tap, leg.conference_id)
        if run.conference_id is not None:
            listening = self._conferences.tap(run.conference_id, tap)
        else:
            listening = self._bridges.tap(leg_id, tap)
        if not listening:
            self._fail(leg, "MACHINE_DETECTION_FAILED", "The call has no audio to analyse")
            return
        self._runs[leg_id] = run
        # The detector counts audio time; should the frames stop (a tap dropped, a port gone),
        # the wall clock ends the run a little after the last moment it could have decided.
        longest = max(request.detection_time, request.message_timeout)
        run.overdue = loop.call_later(longest + OVERDUE_GRACE, self._overdue, leg_id)

    # -- every tick -----------------------------------------------------------------------

    def _detect(self) -> None:
        heard, self._heard = self._heard, {}
        for leg_id, frame in heard.items():
            run = self._runs.get(leg_id)
            if run is None:
                continue  # ended meanwhile
            try:
                for outcome in run.detector.feed(frame):  # every bridge runs at 8 kHz
                    self._report(run, outcome)
            except Exception:
                log.exception("call %s: machine detection failed", leg_id)
                leg = self._calls.get(leg_id)
                self._end(run, leg, "Machine detection failed on this call's audio")
                continue
            if run.detector.finished:
                self._stop(run)

    def _report(self, run: _Run, outcome: MachineVerdict | MessageEnd) -> None:
        leg = self._calls.live(run.leg_id)
        if leg is None:
            return
        if isinstance(outcome, MachineVerdict):
            run.verdict = outcome
            properties: dict[str, Any] = {
                "detectionResult": outcome.result,
                "confidenceRating": dict(outcome.confidence),
            }
            self._calls.note_machine_detection(leg.id, properties)
            self._publish(leg, "MACHINE_DETECTION_FINISHED", properties)
        else:
            self._publish(
                leg, "MACHINE_MESSAGE_DETECTION_FINISHED", {"detectionResult": outcome.result}
            )

    # -- ending ---------------------------------------------------------------------------

    def _before_change(self, leg: Leg, change: str) -> None:
        run = self._runs.get(leg.id)
        if run is None or change not in (ENDING, JOINING_CONFERENCE):
            return
        if change == JOINING_CONFERENCE and run.conference_id == leg.conference_id:
            return  # a new call of a conference joining the room it was heard in
        reason = (
            "The call ended before detection finished"
            if change == ENDING
            else "The call moved into a conference before detection finished"
        )
        self._end(run, leg, reason)  # this leg: an ending one is no longer live

    def _on_participant(self, conference_id: str, call_id: str, joined: bool) -> None:
        """A call heard through a room leaves it (removed, not ended): nothing more is heard."""
        run = self._runs.get(call_id)
        if run is None or joined or run.conference_id != conference_id:
            return
        leg = self._calls.live(call_id)
        if leg is not None:
            self._end(run, leg, "The call left the conference before detection finished")

    def _overdue(self, leg_id: str) -> None:
        run, leg = self._runs.get(leg_id), self._calls.live(leg_id)
        if run is not None and leg is not None:
            self._end(run, leg, "The call's audio stopped reaching the detector")

    def _end(self, run: _Run, leg: Leg, reason: str) -> None:
        """The run stops unfinished: the event of the step it was in fails."""
        self._stop(run)
        kind = "MACHINE_MESSAGE" if run.verdict is not None else "MACHINE"
        self._fail(leg, f"{kind}_DETECTION_FAILED", reason)

    def _stop(self, run: _Run) -> None:
        if self._runs.pop(run.leg_id, None) is None:
            return
        if run.overdue is not None:
            run.overdue.cancel()
        self._heard.pop(run.leg_id, None)
        if run.conference_id is not None:
            self._conferences.untap(run.conference_id, run.tap)
        else:
            self._bridges.untap(run.leg_id, run.tap)

    def _fail(self, leg: Leg, event_type: str, reason: str) -> None:
        self._publish(leg, event_type, {"reason": reason})

    def _publish(self, leg: Leg, event_type: str, properties: dict[str, Any]) -> None:
        if leg.custom_data:
            properties = {**properties, "customData": dict(leg.custom_data)}
        event = call_envelope(event_type, leg, self._clock(), properties)
        self._sink.publish(event, order_key(leg))

    async def close(self) -> None:
        for run in list(self._runs.values()):
            self._stop(run)
