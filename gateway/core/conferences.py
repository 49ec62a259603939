"""Conferences: up to 15 calls that all hear each other through one media-plane bridge.

A call joins when it carries media: an established call at once, an unanswered inbound call
once the gateway has answered it for the app, an outbound call once it is answered (or at
early media with ``connectOnEarlyMedia``). Its PARTICIPANT_JOINING/JOINED are published from
the observer of that call's CALL_ESTABLISHED (or CALL_PRE_ESTABLISHED), so they always follow
it. A participant whose call ends, or that is removed, leaves (PARTICIPANT_REMOVED, or
PARTICIPANT_JOIN_FAILED if it never joined); leaving does not end the call. When the last
participant has left, the conference finishes for good (CONFERENCE_FINISHED).

Every CONFERENCE_*/PARTICIPANT_* event of a conference shares one ordering key, the
conference id; the participants' CALL_* events keep their calls' keys.

``ringbackGeneration``: while an outbound call added with it (before its remote ringback
started) rings, from its first CALL_RINGING or early media until it joins, fails or is
removed, the participants whose audio was in the room at that first ring hear a ringback of
our own, one overlay of the room for all such calls; the ringing call itself is not in the
room yet and hears nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from gateway.core import errors
from gateway.core.calls import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_DURATION,
    CallControl,
    CallError,
    CallRequest,
    InvalidRequest,
    WrongState,
)
from gateway.core.errors import ErrorCode
from gateway.core.leg import Direction, HangupSource, Leg, LegState, MachineDetectionRequest
from gateway.core.ports import ConfigurationDirectory, EventSink
from gateway.core.views import _compact, _seconds, media_properties
from gateway.media.plane import Bridge, FrameSource, MediaPlane, Overlay
from gateway.media.port import MediaPort
from gateway.media.ringback import TONES, Ringback, RingbackTone
from gateway.media.vad import TalkDetector
from gateway.timeutil import format_time, utcnow

log = logging.getLogger(__name__)

MAX_PARTICIPANTS = 15
_RING_EVENTS = ("CALL_RINGING", "CALL_PRE_ESTABLISHED")

# Sees each tick's frames of a conference room: one row per joined call with audio, the
# call ids in row order, then a row per prompt played to the room (as MediaBridges' taps).
RoomTap = Callable[[Sequence[str], np.ndarray], None]
# Told when a call with audio joins (True) or leaves (False) a room: (conference id, call id).
ParticipantObserver = Callable[[str, str, bool], None]


class ParticipantState(StrEnum):
    JOINING = "JOINING"
    JOINED = "JOINED"
    LEFT = "LEFT"


@dataclass
class Participant:
    """One session of a call in a conference (a call removed and added again has two)."""

    call_id: str
    endpoint: dict[str, Any]
    state: ParticipantState = ParticipantState.JOINING
    join_time: datetime | None = None
    leave_time: datetime | None = None
    muted: bool = False
    deaf: bool = False
    user_muted: bool = False


@dataclass
class Conference:
    id: str
    name: str
    calls_configuration_id: str
    start_time: datetime
    platform: dict[str, str] | None = None
    max_duration: int = DEFAULT_MAX_DURATION
    participants: list[Participant] = field(default_factory=list)
    end_time: datetime | None = None
    error_code: ErrorCode | None = None

    @property
    def present(self) -> list[Participant]:
        """The participants that have not left."""
        return [p for p in self.participants if p.state is not ParticipantState.LEFT]

    def participant(self, call_id: str) -> Participant | None:
        return next((p for p in self.present if p.call_id == call_id), None)


@dataclass(frozen=True)
class ConferenceSpec:
    """``ConferenceRequest`` / ``ActionConferenceRequest``: connect takes the configuration
    and platform of the first call when the request has none."""

    name: str | None = None
    calls_configuration_id: str | None = None
    platform: dict[str, str] | None = None
    max_duration: int = DEFAULT_MAX_DURATION


@dataclass(frozen=True)
class NewCall:
    """``ActionCallRequest``: a call placed into a conference on the conference's configuration."""

    endpoint: dict[str, Any]
    from_: str | None = None
    from_display_name: str | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    max_duration: int = DEFAULT_MAX_DURATION
    custom_data: dict[str, str] = field(default_factory=dict)
    machine_detection: MachineDetectionRequest | None = None


@dataclass(frozen=True)
class ConferenceQuery:
    """The filters of ``GET /calls/1/conferences`` and ``/calls/1/conferences/history``."""

    name: str | None = None
    call_id: str | None = None
    calls_configuration_id: str | None = None
    application_id: str | None = None
    start_time_after: datetime | None = None
    end_time_before: datetime | None = None
    # None: every conference; True: finished ones only (history); False: live ones only.
    ended: bool | None = None


class ConferenceStore(Protocol):
    def save(self, conference: Conference) -> None: ...

    def get(self, conference_id: str) -> Conference | None: ...

    def query(
        self, query: ConferenceQuery, offset: int, limit: int
    ) -> tuple[list[Conference], int]: ...

    def unfinished(self) -> list[Conference]: ...


class ConferenceNotFound(CallError):
    def __init__(self, conference_id: str) -> None:
        super().__init__(f"Conference {conference_id!r} was not found.")
        self.conference_id = conference_id


class ParticipantNotFound(CallError):
    def __init__(self, conference_id: str, call_id: str) -> None:
        super().__init__(f"Call {call_id!r} is not a participant of conference {conference_id!r}.")


@dataclass
class _Room:
    """A conference that is not over, with its bridge and the calls waiting to join."""

    conference: Conference
    talk: TalkDetector = field(default_factory=TalkDetector)
    bridge: Bridge | None = None
    ports: dict[str, MediaPort] = field(default_factory=dict)  # call id -> port in the bridge
    waiting: dict[str, bool] = field(default_factory=dict)  # call id -> joins on early media
    # Calls added with ringback generation that have not joined: call id -> has rung yet.
    ringback_calls: dict[str, bool] = field(default_factory=dict)
    ringback: Overlay | None = None  # in ``overlays`` while a ringback call rings
    timer: asyncio.TimerHandle | None = None
    ending: bool = False
    had_joined: bool = False
    # Played to every participant; the bridge's own list once there is a bridge, so that
    # what is played survives the bridge being created later.
    overlays: list[Overlay] = field(default_factory=list)
    taps: list[RoomTap] = field(default_factory=list)


class ConferenceControl:
    def __init__(
        self,
        calls: CallControl,
        store: ConferenceStore,
        sink: EventSink,
        configurations: ConfigurationDirectory,
        plane: MediaPlane | None = None,
        dialog_open: Callable[[str], bool] = lambda _dialog_id: True,
        clock: Callable[[], datetime] = utcnow,
        ringback_tone: RingbackTone = TONES["eu"],
    ) -> None:
        """``dialog_open(dialog_id)`` tells whether a call's dialog still holds it."""
        self._calls = calls
        self._store = store
        self._sink = sink
        self._configurations = configurations
        self._plane = plane
        self._dialog_open = dialog_open
        self._clock = clock
        self.ringback_tone = ringback_tone
        self._rooms: dict[str, _Room] = {}
        self._by_leg: dict[str, _Room] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._end_observers: list[Callable[[str], None]] = []
        self._participant_observers: list[ParticipantObserver] = []
        calls.observe(self._on_call_event)

    # -- what other parts of the core hook on ---------------------------------------------

    def observe_end(self, callback: Callable[[str], None]) -> None:
        """``callback(conference_id)`` when a conference ends, before its CONFERENCE_FINISHED."""
        self._end_observers.append(callback)

    def observe_participants(self, callback: ParticipantObserver) -> None:
        """``callback(conference_id, call_id, joined)`` when a call's audio enters the room's
        bridge (after its PARTICIPANT_JOINED) or leaves it (before its PARTICIPANT_REMOVED)."""
        self._participant_observers.append(callback)

    def play(self, conference_id: str, source: FrameSource) -> bool:
        """Mix ``source`` over what every participant hears (deaf ones excepted), each tick,
        until :meth:`unplay`; False when there is no such live conference."""
        room = self._rooms.get(conference_id)
        if room is None or room.ending:
            return False
        room.overlays.append(Overlay(source, None))
        return True

    def unplay(self, conference_id: str, source: FrameSource) -> None:
        room = self._rooms.get(conference_id)
        if room is not None:
            room.overlays[:] = [o for o in room.overlays if o.source is not source]

    def tap(self, conference_id: str, tap: RoomTap) -> bool:
        """Give ``tap`` the room's frames each tick until :meth:`untap`; False when there is
        no such live conference."""
        room = self._rooms.get(conference_id)
        if room is None:
            return False
        room.taps.append(tap)
        return True

    def untap(self, conference_id: str, tap: RoomTap) -> None:
        room = self._rooms.get(conference_id)
        if room is not None and tap in room.taps:
            room.taps.remove(tap)

    def live(self, conference_id: str) -> Conference | None:
        """The conference if it is live and not being hung up."""
        room = self._rooms.get(conference_id)
        return room.conference if room is not None and not room.ending else None

    def participants(self, conference_id: str) -> list[str]:
        """The calls whose audio is in the live conference's bridge now, in row order of
        the taps; empty when there is no such live conference."""
        room = self._rooms.get(conference_id)
        if room is None:
            return []
        return list(room.ports)

    # -- reading --------------------------------------------------------------------------

    def get(self, conference_id: str) -> Conference:
        room = self._rooms.get(conference_id)
        conference = room.conference if room else self._store.get(conference_id)
        if conference is None:
            raise ConferenceNotFound(conference_id)
        return conference

    def query(
        self, query: ConferenceQuery, offset: int, limit: int
    ) -> tuple[list[Conference], int]:
        return self._store.query(query, offset, limit)

    # -- verbs ----------------------------------------------------------------------------

    def create(self, spec: ConferenceSpec) -> Conference:
        """An empty conference (CONFERENCE_CREATED); it lasts until its last participant left."""
        config_id = spec.calls_configuration_id
        if config_id is None:
            raise InvalidRequest({"callsConfigurationId": ["must not be null"]})
        if not self._configurations.exists(config_id):
            raise InvalidRequest(
                {"callsConfigurationId": [f"calls configuration {config_id!r} does not exist"]}
            )
        conference_id = str(uuid.uuid4())
        conference = Conference(
            id=conference_id,
            name=spec.name or f"conference-{conference_id[:8]}",
            calls_configuration_id=config_id,
            start_time=self._clock(),
            platform=spec.platform,
            max_duration=spec.max_duration,
        )
        room = _Room(conference)
        self._rooms[conference_id] = room
        room.timer = asyncio.get_running_loop().call_later(
            spec.max_duration, self._on_max_duration, conference_id
        )
        self._store.save(conference)
        self._publish_conference("CONFERENCE_CREATED", conference)
        return conference

    async def add_existing(
        self,
        conference_id: str,
        call_id: str,
        early_media: bool = False,
        custom_data: dict[str, str] | None = None,
        ringback: bool = False,
    ) -> Conference:
        """Move a live call in; ``custom_data`` is merged into the call's (saved on joining).
        With ``ringback``, an outbound call not ringing yet rings the room until it joins (one
        already ringing gets no ringback, as the Calls API says)."""
        room = self._open_room(conference_id)
        self._check_room_for(room, 1)
        leg = self._free_leg(call_id)
        leg.custom_data.update(custom_data or {})
        self._admit(room, leg, early_media, ringback)
        return room.conference

    async def add_new(
        self,
        conference_id: str,
        call: NewCall,
        early_media: bool = False,
        ringback: bool = False,
    ) -> tuple[Conference, Leg]:
        """Dial a call that joins once answered (or at early media); the conference's
        configuration and platform own it."""
        room = self._open_room(conference_id)
        self._check_room_for(room, 1)
        conference = room.conference
        request = CallRequest(
            endpoint=call.endpoint,
            calls_configuration_id=conference.calls_configuration_id,
            from_=call.from_,
            from_display_name=call.from_display_name,
            connect_timeout=call.connect_timeout,
            max_duration=call.max_duration,
            custom_data=dict(call.custom_data),
            platform=conference.platform,
            machine_detection=call.machine_detection,
        )

        def admit(leg: Leg) -> None:  # before CALL_STARTED, so that it carries conferenceId
            leg.conference_id = conference.id
            leg.conference_ids.append(conference.id)
            self._admit(room, leg, early_media, ringback)

        leg = await self._calls.create_call(request, before_start=admit)
        return conference, leg

    async def connect(self, call_ids: list[str], spec: ConferenceSpec) -> Conference:
        """A new conference with the given calls, joined in the order given."""
        if len(call_ids) != 2 or call_ids[0] == call_ids[1]:
            raise InvalidRequest({"callIds": ["must name two different calls"]})
        legs = [self._free_leg(call_id) for call_id in call_ids]
        room = self._rooms[self.create(self._spec_for(spec, legs[0])).id]
        for leg in legs:
            self._admit(room, leg, early_media=False)
        return room.conference

    async def connect_with_new_call(
        self,
        call_id: str,
        call: NewCall,
        early_media: bool,
        spec: ConferenceSpec,
        ringback: bool = False,
    ) -> tuple[Conference, Leg]:
        """A new conference with an existing call and a new one that joins when answered."""
        leg = self._free_leg(call_id)
        conference = self.create(self._spec_for(spec, leg))
        room = self._rooms[conference.id]
        self._admit(room, leg, early_media=False)
        try:
            return await self.add_new(conference.id, call, early_media, ringback)
        except CallError:  # the new call was refused: take the conference down again
            room.ending = True
            self._leave(room, leg.id, "The new call could not be placed")
            raise

    async def remove(self, conference_id: str, call_id: str) -> None:
        """The call leaves the conference and stays up."""
        room = self._open_room(conference_id)
        if room.conference.participant(call_id) is None:
            raise ParticipantNotFound(conference_id, call_id)
        self._leave(room, call_id, "Removed from the conference by an API request")

    def update(
        self,
        conference_id: str,
        call_id: str | None,
        muted: bool | None,
        deaf: bool | None,
    ) -> None:
        """Mute or deafen one participant, or all when ``call_id`` is None."""
        room = self._open_room(conference_id)
        if call_id is None:
            targets = room.conference.present
        else:
            one = room.conference.participant(call_id)
            if one is None:
                raise ParticipantNotFound(conference_id, call_id)
            targets = [one]
        for participant in targets:
            before = (participant.muted, participant.deaf)
            participant.muted = participant.muted if muted is None else muted
            participant.deaf = participant.deaf if deaf is None else deaf
            if (participant.muted, participant.deaf) == before:
                continue
            self._apply_media(room, participant)
            if participant.call_id not in room.waiting:
                self._publish_participant("PARTICIPANT_MEDIA_CHANGED", room, participant)
        self._store.save(room.conference)

    async def hangup(
        self, conference_id: str, source: HangupSource = HangupSource.API
    ) -> Conference:
        """Hang up every participant's call; the conference finishes with the last one."""
        room = self._open_room(conference_id)
        room.ending = True
        for participant in list(room.conference.present):
            try:
                await self._calls.hangup(participant.call_id, None, source)
            except CallError as error:  # already ending: its final event removes it
                log.debug("conference %s: hangup skipped: %s", conference_id, error)
        for participant in list(room.conference.present):  # could not be hung up
            self._leave(room, participant.call_id, "The conference was hung up")
        if conference_id in self._rooms:
            self._finish(room)
        return room.conference

    # -- lifecycle ------------------------------------------------------------------------

    def recover(self) -> int:
        """Finish the conferences a previous process left open (run after CallControl.recover)."""
        orphans = self._store.unfinished()
        now = self._clock()
        for conference in orphans:
            for participant in conference.present:
                participant.state, participant.leave_time = ParticipantState.LEFT, now
            self._end(conference)
        return len(orphans)

    async def close(self) -> None:
        """Stop acting; CallControl.close, run next, ends the calls and so the conferences."""
        self._closing = True
        for room in self._rooms.values():
            room.ending = True
            if room.timer is not None:
                room.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- joining --------------------------------------------------------------------------

    def _admit(self, room: _Room, leg: Leg, early_media: bool, ringback: bool = False) -> None:
        """The call becomes a participant (JOINING); it joins as soon as it carries media."""
        conference = room.conference
        conference.participants.append(Participant(leg.id, leg.endpoint, user_muted=leg.user_muted))
        room.waiting[leg.id] = early_media
        # Only a call whose remote ringback has not started yet: once it rings (or plays early
        # media), the Calls API applies no local ringback.
        if ringback and leg.direction is Direction.OUTBOUND and leg.state is LegState.CALLING:
            room.ringback_calls[leg.id] = False
        self._by_leg[leg.id] = room
        if leg.conference_id != conference.id:
            self._calls.join_conference(leg.id, conference.id)
        self._store.save(conference)
        if leg.direction is Direction.INBOUND and leg.state.is_alerting:
            self._spawn(self._answer(leg.id))  # the app did not answer: the gateway does
        elif self._ready(room, leg):
            self._join(room, leg)

    async def _answer(self, leg_id: str) -> None:
        try:
            await self._calls.answer(leg_id, None)
        except CallError as error:  # it ended or was answered meanwhile
            log.debug("answering call %s for its conference skipped: %s", leg_id, error)

    @staticmethod
    def _ready(room: _Room, leg: Leg) -> bool:
        early = room.waiting.get(leg.id, False)
        return leg.state is LegState.ESTABLISHED or (
            early and leg.state is LegState.PRE_ESTABLISHED
        )

    def _join(self, room: _Room, leg: Leg) -> None:
        participant = room.conference.participant(leg.id)
        assert participant is not None
        del room.waiting[leg.id]
        self._unring(room, leg.id)  # the room hears the call itself from now on
        self._publish_participant("PARTICIPANT_JOINING", room, participant)
        self._attach(room, participant)
        participant.state, participant.join_time = ParticipantState.JOINED, self._clock()
        room.had_joined = True
        self._store.save(room.conference)
        self._publish_participant("PARTICIPANT_JOINED", room, participant)
        if leg.id in room.ports:
            self._tell_participant(room, leg.id, joined=True)

    # -- reacting to the calls ------------------------------------------------------------

    def _on_call_event(self, leg: Leg, event: str) -> None:
        room = self._by_leg.get(leg.id)
        if room is None:
            return
        try:
            if leg.state.is_final:
                code = leg.error_code.name if leg.error_code else leg.state.value
                self._leave(room, leg.id, f"The call has ended ({code})")
            elif leg.id in room.waiting and self._ready(room, leg):
                self._join(room, leg)
            elif event in _RING_EVENTS:
                self._ring(room, leg)
            elif event == "CALL_MEDIA_CHANGED":
                self._user_muted(room, leg)
        except Exception:
            log.exception(
                "conference %s: reacting to %s of call %s failed",
                room.conference.id,
                event,
                leg.id,
            )

    def _user_muted(self, room: _Room, leg: Leg) -> None:
        """The person muted or unmuted themselves: the participant's media says so too."""
        participant = room.conference.participant(leg.id)
        if participant is None or participant.user_muted == leg.user_muted:
            return
        participant.user_muted = leg.user_muted
        self._store.save(room.conference)
        if leg.id not in room.waiting:
            self._publish_participant("PARTICIPANT_MEDIA_CHANGED", room, participant)

    def _on_max_duration(self, conference_id: str) -> None:
        room = self._rooms.get(conference_id)
        if room is not None and not room.ending:
            room.timer = None
            self._spawn(self.hangup(conference_id, HangupSource.PLATFORM))

    # -- leaving and ending ---------------------------------------------------------------

    def _leave(self, room: _Room, call_id: str, reason: str) -> None:
        """PARTICIPANT_REMOVED (JOIN_FAILED if it never joined); the call stays as it is."""
        conference = room.conference
        participant = conference.participant(call_id)
        if participant is None:
            return
        joined = room.waiting.pop(call_id, None) is None
        self._unring(room, call_id)
        if joined and room.talk.forget(call_id):
            self._publish_talk("PARTICIPANT_STOPPED_TALKING", room, call_id)
        self._detach(room, call_id)
        participant.state, participant.leave_time = ParticipantState.LEFT, self._clock()
        if not joined:
            conference.participants.remove(participant)  # no session to keep in the history
        if self._by_leg.get(call_id) is room:
            del self._by_leg[call_id]
        self._calls.join_conference(call_id, None)
        self._store.save(conference)
        event = "PARTICIPANT_REMOVED" if joined else "PARTICIPANT_JOIN_FAILED"
        self._publish_participant(event, room, participant, reason)
        if not conference.present and (room.had_joined or room.ending):
            self._finish(room)

    def _finish(self, room: _Room) -> None:
        conference = room.conference
        del self._rooms[conference.id]
        room.ringback_calls.clear()
        self._unring(room, None)
        if room.timer is not None:
            room.timer.cancel()
        if room.bridge is not None and self._plane is not None:
            self._plane.dissolve(room.bridge)
        self._end(conference)

    def _end(self, conference: Conference) -> None:
        for observer in list(self._end_observers):
            try:
                observer(conference.id)
            except Exception:
                log.exception("conference %s: an end observer failed", conference.id)
        conference.end_time = self._clock()
        conference.error_code = errors.NORMAL_HANGUP
        self._store.save(conference)
        self._publish_conference("CONFERENCE_FINISHED", conference)

    # -- media ----------------------------------------------------------------------------

    def _attach(self, room: _Room, participant: Participant) -> None:
        port = self._calls.media_port(participant.call_id)
        if port is None or self._plane is None:
            log.info("call %s joins without audio: no media port", participant.call_id)
            return
        if room.bridge is None:
            room.bridge = self._plane.bridge()
            room.bridge.taps.append(lambda frames: self._on_frames(room, frames))
            room.bridge.overlays = room.overlays
        room.bridge.add(port)
        room.ports[participant.call_id] = port
        self._apply_media(room, participant)

    def _ring(self, room: _Room, leg: Leg) -> None:
        """A ringback call's first ring: whoever is in the room now hears the ringback (as
        well as those already hearing it for another ringing call)."""
        if room.ringback_calls.get(leg.id) is not False or not leg.state.is_ringing:
            return
        room.ringback_calls[leg.id] = True
        hearers = frozenset(id(port) for port in room.ports.values())
        if room.ringback is not None:
            room.ringback.hearers = (room.ringback.hearers or frozenset()) | hearers
        elif hearers and not room.ending:
            room.ringback = Overlay(Ringback(self.ringback_tone), hearers)
            room.overlays.append(room.ringback)

    def _unring(self, room: _Room, call_id: str | None) -> None:
        """A ringback call joined or left: the ringback stops once no such call rings."""
        if call_id is not None:
            room.ringback_calls.pop(call_id, None)
        overlay = room.ringback
        if overlay is None or any(room.ringback_calls.values()):
            return
        room.ringback = None
        if overlay in room.overlays:
            room.overlays.remove(overlay)

    def _detach(self, room: _Room, call_id: str) -> None:
        port = room.ports.pop(call_id, None)
        if port is not None and room.bridge is not None:
            room.bridge.remove(port)
        if port is not None:
            self._tell_participant(room, call_id, joined=False)

    def _tell_participant(self, room: _Room, call_id: str, joined: bool) -> None:
        for observer in list(self._participant_observers):
            try:
                observer(room.conference.id, call_id, joined)
            except Exception:
                log.exception("conference %s: a participant observer failed", room.conference.id)

    @staticmethod
    def _apply_media(room: _Room, participant: Participant) -> None:
        port = room.ports.get(participant.call_id)
        if port is None or room.bridge is None:
            return
        for flags, on in (
            (room.bridge.muted, participant.muted),
            (room.bridge.deaf, participant.deaf),
        ):
            if on:
                flags.add(id(port))
            else:
                flags.discard(id(port))

    def _on_frames(self, room: _Room, frames: np.ndarray) -> None:
        """Every tick, from the bridge: talk detection over all participants at once, then
        the room's taps (a tap that raises is removed alone)."""
        try:
            owners = {id(port): call_id for call_id, port in room.ports.items()}
            keys = [owners[id(port)] for port in room.bridge.ports] if room.bridge else []
        except KeyError:  # a port not (or no longer) a participant's: not this tick
            return
        try:
            for call_id, talking in room.talk.update(keys, frames[: len(keys)]):
                kind = "PARTICIPANT_STARTED_TALKING" if talking else "PARTICIPANT_STOPPED_TALKING"
                self._publish_talk(kind, room, str(call_id))
        except Exception:
            log.exception("conference %s: talk detection failed", room.conference.id)
        for tap in list(room.taps):
            try:
                tap(keys, frames)
            except Exception:
                log.exception("conference %s: a tap failed; removing it", room.conference.id)
                room.taps.remove(tap)

    # -- internals ------------------------------------------------------------------------

    def _open_room(self, conference_id: str) -> _Room:
        room = self._rooms.get(conference_id)
        if room is None:
            self.get(conference_id)  # ConferenceNotFound if it never existed
            raise WrongState(
                f"Conference {conference_id!r} has finished; a finished conference is never "
                "reopened (create a new one)."
            )
        if room.ending:
            raise WrongState(f"Conference {conference_id!r} is being hung up.")
        return room

    @staticmethod
    def _check_room_for(room: _Room, count: int) -> None:
        if len(room.conference.present) + count > MAX_PARTICIPANTS:
            raise WrongState(
                f"Conference {room.conference.id!r} is full: a conference has at most "
                f"{MAX_PARTICIPANTS} participants."
            )

    def _free_leg(self, call_id: str) -> Leg:
        """A live call in no dialog and no conference (CallNotFound if there is no such call)."""
        leg = self._calls.get(call_id)
        if self._calls.live(call_id) is None:
            raise WrongState(
                f"Call {call_id!r} has already ended ({leg.state}): only live calls can join "
                "a conference."
            )
        if leg.dialog_id is not None and self._dialog_open(leg.dialog_id):
            raise WrongState(f"Call {call_id!r} is in dialog {leg.dialog_id!r}.")
        room = self._by_leg.get(call_id)
        if room is not None:
            raise WrongState(f"Call {call_id!r} is already in conference {room.conference.id!r}.")
        return leg

    @staticmethod
    def _spec_for(spec: ConferenceSpec, leg: Leg) -> ConferenceSpec:
        return ConferenceSpec(
            name=spec.name,
            calls_configuration_id=spec.calls_configuration_id or leg.calls_configuration_id,
            platform=spec.platform or leg.platform,
            max_duration=spec.max_duration,
        )

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        if self._closing:
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _publish_conference(self, event_type: str, conference: Conference) -> None:
        properties: dict[str, Any] = {"conference": conference_view(conference)}
        if event_type == "CONFERENCE_FINISHED" and conference.error_code is not None:
            properties["errorCode"] = conference.error_code.as_json()
        self._emit(conference, event_type, None, properties)

    def _publish_participant(
        self,
        event_type: str,
        room: _Room,
        participant: Participant,
        reason: str | None = None,
    ) -> None:
        if event_type == "PARTICIPANT_MEDIA_CHANGED":
            properties = media_view(participant)
        else:
            properties = _compact({"participant": participant_view(participant), "reason": reason})
        self._emit(room.conference, event_type, participant.call_id, properties)

    def _publish_talk(self, event_type: str, room: _Room, call_id: str) -> None:
        self._emit(room.conference, event_type, call_id, None)

    def _emit(
        self,
        conference: Conference,
        event_type: str,
        call_id: str | None,
        properties: dict[str, Any] | None,
    ) -> None:
        """One ordering key per conference: its events reach a webhook in publish order."""
        event = conference_envelope(event_type, conference, self._clock(), properties, call_id)
        self._sink.publish(event, conference.id)


def conference_envelope(
    event_type: str,
    conference: Conference,
    moment: datetime,
    properties: dict[str, Any] | None,
    call_id: str | None = None,
) -> dict[str, Any]:
    """The envelope of every CONFERENCE_*/PARTICIPANT_* event (conference recordings too)."""
    return _compact(
        {
            "conferenceId": conference.id,
            "callId": call_id,
            "timestamp": format_time(moment),
            "callsConfigurationId": conference.calls_configuration_id,
            "platform": conference.platform,
            "type": event_type,
            "properties": properties,
        }
    )


# -- views: derived on demand, absent values left out ---------------------------------------


def media_view(participant: Participant) -> dict[str, Any]:
    return media_properties(participant.muted, participant.user_muted, participant.deaf)


def participant_view(participant: Participant) -> dict[str, Any]:
    """``Participant``; every participant has the DEFAULT role."""
    return _compact(
        {
            "callId": participant.call_id,
            "endpoint": participant.endpoint,
            "state": participant.state.value,
            "joinTime": format_time(participant.join_time),
            "leaveTime": format_time(participant.leave_time),
            "media": media_view(participant),
            "role": {"type": "DEFAULT"},
        }
    )


def conference_view(conference: Conference) -> dict[str, Any]:
    """``Conference``: the participants that are in it now."""
    return _compact(
        {
            "id": conference.id,
            "name": conference.name,
            "participants": [participant_view(p) for p in conference.present],
            "callsConfigurationId": conference.calls_configuration_id,
            "platform": conference.platform,
        }
    )


def conference_log_view(conference: Conference) -> dict[str, Any]:
    """``ConferenceLogResponse``: one session per stay of a call (no recordings yet)."""
    return _compact(
        {
            "conferenceId": conference.id,
            "name": conference.name,
            "platform": conference.platform,
            "startTime": format_time(conference.start_time),
            "endTime": format_time(conference.end_time),
            "duration": _seconds(conference.start_time, conference.end_time) or 0,
            "sessions": [
                _compact(
                    {
                        "callId": p.call_id,
                        "joinTime": format_time(p.join_time),
                        "leaveTime": format_time(p.leave_time),
                    }
                )
                for p in conference.participants
            ],
            "errorCode": conference.error_code.as_json() if conference.error_code else None,
        }
    )
