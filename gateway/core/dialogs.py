"""Dialogs: a parent call and one child call joined one to one, without a conference.

The child's progress is propagated to the parent (ringing, early media, answer) and the end of
either leg ends the other (the parent only when ``childCallHangup``). Dialog events share the
parent call's ordering key, so DIALOG_CREATED comes before the child's CALL_STARTED and
DIALOG_FINISHED after both legs' final events.

DialogControl observes CallControl; observers run inside CallControl's event recording, so every
verb on the other leg is scheduled as a task, never awaited there. The tasks of one dialog run
one after another (a lock per dialog), and each looks at the legs afresh when its turn comes.
Audio is the media plane's business: ``on_bridge(parent, child)`` says the two legs should
hear each other, from the moment both have media (early media included); it comes again when a
leg's media changes (pre-answer, then answer), so it must be idempotent. ``on_unbridge(parent,
child)`` comes once, when the dialog starts to end.

``ringbackGeneration`` (an INBOUND parent not answered yet when the dialog is created;
otherwise ignored, as the Calls API says): from the child's first ring (CALL_RINGING, or its
early media when it has no ringing) the parent is pre-answered and hears a ringback of our own
(``on_play(parent, source)``, ``on_unplay`` to stop it) in place of the child's ringing or
early media, which it does not hear; the tone stops, and the legs are bridged, when the child
answers, and it stops when the dialog starts to end.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from gateway.core import errors
from gateway.core.calls import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_DURATION,
    CallControl,
    CallError,
    CallNotFound,
    CallRequest,
    InvalidRequest,
    WrongState,
)
from gateway.core.errors import ErrorCode
from gateway.core.leg import Direction, HangupSource, Leg, LegState, MachineDetectionRequest
from gateway.core.ports import EventSink
from gateway.core.views import _compact, _seconds, call_view
from gateway.media.plane import FrameSource
from gateway.media.ringback import TONES, Ringback, RingbackTone
from gateway.timeutil import format_time, utcnow

log = logging.getLogger(__name__)


class DialogState(StrEnum):
    CREATED = "CREATED"
    PRE_ESTABLISHED = "PRE_ESTABLISHED"
    ESTABLISHED = "ESTABLISHED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    TRANSFERRING = "TRANSFERRING"  # in the API's enum (a filter value); never entered here

    @property
    def is_final(self) -> bool:
        return self in (DialogState.FINISHED, DialogState.FAILED)


class DialogHangupSource(StrEnum):
    API = "API"
    PARENT_ENDPOINT = "PARENT_ENDPOINT"
    CHILD_ENDPOINT = "CHILD_ENDPOINT"
    PLATFORM = "PLATFORM"


@dataclass(frozen=True)
class Propagation:
    """``propagationOptions``."""

    child_call_hangup: bool = True
    child_call_ringing: bool = False
    ringback_generation: bool = False


@dataclass(frozen=True)
class ChildCall:
    """The new call of a dialog (``DialogCallRequest``); it inherits the parent's configuration."""

    endpoint: dict[str, Any]
    from_: str | None = None
    from_display_name: str | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    custom_data: dict[str, str] = field(default_factory=dict)
    machine_detection: MachineDetectionRequest | None = None


@dataclass
class Dialog:
    id: str
    calls_configuration_id: str
    parent_call_id: str
    child_call_id: str
    start_time: datetime
    state: DialogState = DialogState.CREATED
    platform: dict[str, str] | None = None
    propagation: Propagation = field(default_factory=Propagation)
    max_duration: int = DEFAULT_MAX_DURATION
    establish_time: datetime | None = None
    end_time: datetime | None = None
    error_code: ErrorCode | None = None
    hangup_source: DialogHangupSource | None = None


@dataclass(frozen=True)
class DialogQuery:
    """The filters of ``GET /calls/1/dialogs`` and ``/calls/1/dialogs/history``."""

    calls_configuration_id: str | None = None
    application_id: str | None = None
    state: DialogState | None = None
    parent_call_id: str | None = None
    child_call_id: str | None = None
    start_time_after: datetime | None = None
    end_time_before: datetime | None = None
    # None: every dialog; True: ended dialogs only (history); False: open ones only.
    ended: bool | None = None


class DialogStore(Protocol):
    def save(self, dialog: Dialog) -> None: ...

    def get(self, dialog_id: str) -> Dialog | None: ...

    def query(self, query: DialogQuery, offset: int, limit: int) -> tuple[list[Dialog], int]: ...

    def unfinished(self) -> list[Dialog]: ...


class DialogNotFound(CallError):
    def __init__(self, dialog_id: str) -> None:
        super().__init__(f"Dialog {dialog_id!r} was not found.")
        self.dialog_id = dialog_id


BridgeHook = Callable[[Leg, Leg], object]
# Plays a frame source to a leg until told to stop (the media plane's business, like bridging).
PlayHook = Callable[[Leg, FrameSource], object]
_WITH_MEDIA = (LegState.PRE_ESTABLISHED, LegState.ESTABLISHED)
_Step = Callable[[], Awaitable[Any]]


@dataclass
class _Active:
    """A dialog that is not over yet, with the live leg objects CallControl keeps updating."""

    dialog: Dialog
    parent: Leg
    child: Leg
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    releasing: set[str] = field(default_factory=set)  # legs this dialog is hanging up
    timer: asyncio.TimerHandle | None = None
    bridged: bool = False
    ringback: bool = False  # the parent hears our ringback, not the child, until it answers
    tone: Ringback | None = None  # the ringback playing to the parent now

    @property
    def ending(self) -> bool:
        return self.dialog.hangup_source is not None

    def legs(self) -> tuple[Leg, Leg]:
        return self.parent, self.child


class DialogControl:
    def __init__(
        self,
        calls: CallControl,
        store: DialogStore,
        sink: EventSink,
        clock: Callable[[], datetime] = utcnow,
        on_bridge: BridgeHook | None = None,
        on_unbridge: BridgeHook | None = None,
        on_play: PlayHook | None = None,
        on_unplay: PlayHook | None = None,
        ringback_tone: RingbackTone = TONES["eu"],
    ) -> None:
        self._calls = calls
        self._store = store
        self._sink = sink
        self._clock = clock
        self.on_bridge = on_bridge
        self.on_unbridge = on_unbridge
        self.on_play = on_play
        self.on_unplay = on_unplay
        self.ringback_tone = ringback_tone
        self._active: dict[str, _Active] = {}
        self._by_leg: dict[str, _Active] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        calls.observe(self._on_call_event)

    # -- reading --------------------------------------------------------------------------

    def get(self, dialog_id: str) -> Dialog:
        active = self._active.get(dialog_id)
        dialog = active.dialog if active else self._store.get(dialog_id)
        if dialog is None:
            raise DialogNotFound(dialog_id)
        return dialog

    def query(self, query: DialogQuery, offset: int, limit: int) -> tuple[list[Dialog], int]:
        return self._store.query(query, offset, limit)

    def legs(self, dialog: Dialog) -> tuple[Leg | None, Leg | None]:
        """The parent and child legs as they are now (None if the store lost one)."""
        active = self._active.get(dialog.id)
        if active is not None:
            return active.legs()
        return self._leg(dialog.parent_call_id), self._leg(dialog.child_call_id)

    def view(self, dialog: Dialog) -> dict[str, Any]:
        return dialog_view(dialog, *self.legs(dialog))

    # -- verbs ----------------------------------------------------------------------------

    async def create(
        self,
        parent_id: str,
        child: ChildCall,
        propagation: Propagation | None = None,
        max_duration: int = DEFAULT_MAX_DURATION,
    ) -> Dialog:
        """Dial the child for a live parent; DIALOG_CREATED precedes the child's CALL_STARTED."""
        propagation = propagation or Propagation()
        parent = self._free_leg(parent_id, "parent")
        _check_propagation(parent, propagation)
        dialog_id = str(uuid.uuid4())
        request = CallRequest(
            endpoint=child.endpoint,
            calls_configuration_id=parent.calls_configuration_id,
            from_=child.from_,
            from_display_name=child.from_display_name,
            connect_timeout=child.connect_timeout,
            max_duration=max_duration,
            custom_data=dict(child.custom_data),
            platform=parent.platform,
            parent_call_id=parent.id,
            dialog_id=dialog_id,
            machine_detection=child.machine_detection,
        )
        opened: list[_Active] = []

        def open_dialog(child_leg: Leg) -> None:
            dialog = self._new_dialog(dialog_id, parent, child_leg, propagation, max_duration)
            opened.append(self._open(dialog, parent, child_leg))

        await self._calls.create_call(request, before_start=open_dialog)
        return opened[0].dialog

    async def create_with_existing(
        self,
        parent_id: str,
        child_id: str,
        propagation: Propagation | None = None,
        max_duration: int = DEFAULT_MAX_DURATION,
    ) -> Dialog:
        """Join two live calls; the child must have been created with ``parentCallId``."""
        propagation = propagation or Propagation()
        parent = self._free_leg(parent_id, "parent")
        child = self._free_leg(child_id, "child")
        if child.parent_call_id != parent.id:
            raise WrongState(
                f"Call {child_id!r} cannot be the child of call {parent_id!r}: it was not "
                f"created with parentCallId {parent_id!r}."
            )
        _check_propagation(parent, propagation)
        dialog = self._new_dialog(str(uuid.uuid4()), parent, child, propagation, max_duration)
        active = self._open(dialog, parent, child)
        self._follow_child(active)
        self._ring(active)
        self._bridge_if_media(active)
        self._check_established(active)
        return dialog

    async def hangup(self, dialog_id: str) -> Dialog:
        """Hang up both legs (child first); the dialog ends with hangupSource API."""
        active = self._active.get(dialog_id)
        if active is None:
            dialog = self.get(dialog_id)
            raise WrongState(f"Dialog {dialog_id!r} has already ended ({dialog.state}).")
        established = active.dialog.state is DialogState.ESTABLISHED
        self._begin_end(
            active,
            DialogHangupSource.API,
            errors.NORMAL_HANGUP if established else errors.CANCELLED,
        )
        legs = (active.child, active.parent)
        active.releasing.update(leg.id for leg in legs)
        for leg in legs:
            await self._in_turn(
                active, lambda leg=leg: self._release(active, leg, HangupSource.API)
            )
        return active.dialog

    # -- lifecycle ------------------------------------------------------------------------

    def recover(self) -> int:
        """End the dialogs a previous process left open (run after CallControl.recover)."""
        orphans = self._store.unfinished()
        for dialog in orphans:
            established = dialog.state is DialogState.ESTABLISHED
            dialog.hangup_source = DialogHangupSource.PLATFORM
            dialog.error_code = errors.NORMAL_HANGUP if established else errors.SERVICE_UNAVAILABLE
            self._end(dialog, *self.legs(dialog))
        return len(orphans)

    async def close(self) -> None:
        """Stop propagating; CallControl.close, run next, ends the legs and so the dialogs."""
        self._closing = True
        for active in self._active.values():
            active.releasing.update(leg.id for leg in active.legs())
            if active.timer is not None:
                active.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- reacting to the legs -------------------------------------------------------------

    def _on_call_event(self, leg: Leg, event: str) -> None:
        active = self._by_leg.get(leg.id)
        if active is None:
            return
        try:
            if leg.state.is_final:
                self._leg_ended(active, leg)
                return
            if leg.id == active.child.id:
                self._follow_child(active)
            self._ring(active)
            self._bridge_if_media(active)
            if event == "CALL_ESTABLISHED":
                self._check_established(active)
        except Exception:
            log.exception(
                "dialog %s: reacting to %s of call %s failed", active.dialog.id, event, leg.id
            )

    def _follow_child(self, active: _Active) -> None:
        """Give an inbound, unanswered parent what the child has: ringing, early media, answer."""
        parent, child, dialog = active.parent, active.child, active.dialog
        if child.state is LegState.PRE_ESTABLISHED and dialog.state is DialogState.CREATED:
            dialog.state = DialogState.PRE_ESTABLISHED
            self._store.save(dialog)
        if parent.direction is not Direction.INBOUND or not parent.state.is_alerting:
            return
        if child.state is LegState.ESTABLISHED:
            self._schedule(active, lambda: self._calls.answer(parent.id, None), progress=True)
        elif parent.state is LegState.RINGING and (
            child.state is LegState.PRE_ESTABLISHED
            or (child.state is LegState.RINGING and active.ringback)
        ):  # the parent gets early media: the child's, or our ringback
            self._schedule(active, lambda: self._calls.pre_answer(parent.id, None), progress=True)
        elif (
            child.state is LegState.RINGING
            and dialog.propagation.child_call_ringing
            and parent.state is LegState.RINGING
        ):
            self._schedule(active, lambda: self._calls.send_ringing(parent.id), progress=True)

    def _ring(self, active: _Active) -> None:
        """Ringback: the parent rings while the child rings (once the parent has media to
        hear it on); over for good once the child answers."""
        if not active.ringback:
            return
        parent, child = active.legs()
        if active.ending or not child.state.is_ringing:
            if child.state is LegState.ESTABLISHED or active.ending:
                active.ringback = False
            self._silence(active)
        elif active.tone is None and parent.state in _WITH_MEDIA and self.on_play is not None:
            tone = Ringback(self.ringback_tone)
            active.tone = tone  # taken back by _silence, however far playing it got
            try:
                playing = self.on_play(parent, tone)
            except Exception:
                log.exception("dialog %s: ringback could not be played", active.dialog.id)
                playing = False
            if not playing:
                self._silence(active)

    def _silence(self, active: _Active) -> None:
        """Stop the ringback, if it plays; nothing of it is left."""
        tone, active.tone = active.tone, None
        if tone is None:
            return
        tone.stop()
        if self.on_unplay is not None:
            try:
                self.on_unplay(active.parent, tone)
            except Exception:
                log.exception("dialog %s: ringback could not be stopped", active.dialog.id)

    def _check_established(self, active: _Active) -> None:
        dialog = active.dialog
        if (
            active.ending
            or dialog.state is DialogState.ESTABLISHED
            or active.parent.state is not LegState.ESTABLISHED
            or active.child.state is not LegState.ESTABLISHED
        ):
            return
        dialog.state = DialogState.ESTABLISHED
        dialog.establish_time = self._clock()
        self._store.save(dialog)
        self._publish("DIALOG_ESTABLISHED", dialog, *active.legs())
        active.timer = asyncio.get_running_loop().call_later(
            dialog.max_duration, self._on_max_duration, dialog.id
        )

    def _leg_ended(self, active: _Active, leg: Leg) -> None:
        """The first leg to end decides the dialog's cause; the other leg follows it."""
        is_parent = leg.id == active.parent.id
        if not active.ending:
            if leg.hangup_source is HangupSource.ENDPOINT:
                source = (
                    DialogHangupSource.PARENT_ENDPOINT
                    if is_parent
                    else DialogHangupSource.CHILD_ENDPOINT
                )
            else:
                source = DialogHangupSource(str(leg.hangup_source or HangupSource.PLATFORM))
            self._begin_end(active, source, leg.error_code or errors.NORMAL_HANGUP)
        other = active.child if is_parent else active.parent
        follows = is_parent or active.dialog.propagation.child_call_hangup
        if follows and not other.state.is_final and other.id not in active.releasing:
            active.releasing.add(other.id)
            self._schedule(active, lambda: self._release(active, other, HangupSource.PLATFORM))
        self._finish_if_over(active)

    def _on_max_duration(self, dialog_id: str) -> None:
        active = self._active.get(dialog_id)
        if active is None or active.ending:
            return
        active.timer = None
        self._begin_end(active, DialogHangupSource.PLATFORM, errors.NORMAL_HANGUP)
        for leg in (active.child, active.parent):
            active.releasing.add(leg.id)
            self._schedule(
                active, lambda leg=leg: self._release(active, leg, HangupSource.PLATFORM)
            )

    # -- ending ---------------------------------------------------------------------------

    def _begin_end(self, active: _Active, source: DialogHangupSource, cause: ErrorCode) -> None:
        if active.ending:
            return
        active.dialog.hangup_source = source
        active.dialog.error_code = cause
        active.ringback = False
        self._silence(active)
        if active.timer is not None:
            active.timer.cancel()
            active.timer = None
        if active.bridged:
            active.bridged = False
            self._hook(self.on_unbridge, active)

    async def _release(self, active: _Active, leg: Leg, source: HangupSource) -> None:
        """Hang up a leg the dialog takes down; an unanswered inbound parent hears why (BUSY,
        NO_ANSWER...) when that cause applies to unanswered calls."""
        if leg.state.is_final:
            return
        cause = active.dialog.error_code
        name = None
        if (
            leg.id == active.parent.id
            and leg.direction is Direction.INBOUND
            and leg.state.is_alerting
            and cause is not None
            and not cause.needs_established
        ):
            name = cause.name
        try:
            await self._calls.hangup(leg.id, name, source)
        except Exception:
            if not leg.state.is_final:  # could not hang it up: do not wait for it for ever
                active.releasing.discard(leg.id)
                self._finish_if_over(active)
            raise

    def _finish_if_over(self, active: _Active) -> None:
        """Over once the child has ended and the parent has too, unless the parent stays up."""
        parent, child = active.legs()
        if active.dialog.id not in self._active or not child.state.is_final:
            return
        if not parent.state.is_final and parent.id in active.releasing:
            return
        del self._active[active.dialog.id]
        for leg in active.legs():
            if self._by_leg.get(leg.id) is active:
                del self._by_leg[leg.id]
        self._end(active.dialog, parent, child)

    def _end(self, dialog: Dialog, parent: Leg | None, child: Leg | None) -> None:
        established = dialog.establish_time is not None
        dialog.state = DialogState.FINISHED if established else DialogState.FAILED
        dialog.end_time = self._clock()
        self._store.save(dialog)
        self._publish("DIALOG_FINISHED" if established else "DIALOG_FAILED", dialog, parent, child)

    # -- internals ------------------------------------------------------------------------

    def _free_leg(self, leg_id: str, role: str) -> Leg:
        """A live call in no open dialog or conference (CallNotFound if there is no such
        call)."""
        leg = self._calls.get(leg_id)
        if self._calls.live(leg_id) is None:
            raise WrongState(
                f"Call {leg_id!r} has already ended ({leg.state}): "
                f"the {role} call of a dialog must be live."
            )
        active = self._by_leg.get(leg_id)
        if active is not None:
            raise WrongState(f"Call {leg_id!r} is already in dialog {active.dialog.id!r}.")
        if leg.conference_id is not None:  # set while the call takes part in a conference
            raise WrongState(f"Call {leg_id!r} is in conference {leg.conference_id!r}.")
        return leg

    def _new_dialog(
        self,
        dialog_id: str,
        parent: Leg,
        child: Leg,
        propagation: Propagation,
        max_duration: int,
    ) -> Dialog:
        return Dialog(
            id=dialog_id,
            calls_configuration_id=parent.calls_configuration_id,
            parent_call_id=parent.id,
            child_call_id=child.id,
            start_time=self._clock(),
            platform=parent.platform,
            propagation=propagation,
            max_duration=max_duration,
        )

    def _open(self, dialog: Dialog, parent: Leg, child: Leg) -> _Active:
        # Ringback applies to an INBOUND parent not answered yet; otherwise it is ignored.
        ringback = (
            dialog.propagation.ringback_generation
            and parent.direction is Direction.INBOUND
            and parent.state.is_alerting
        )
        active = _Active(dialog, parent, child, ringback=ringback)
        self._active[dialog.id] = active
        for leg in (parent, child):
            self._by_leg[leg.id] = active
            if leg.dialog_id != dialog.id:
                self._calls.join_dialog(leg.id, dialog.id)
        self._store.save(dialog)
        self._publish("DIALOG_CREATED", dialog, parent, child)
        return active

    def _publish(
        self, event_type: str, dialog: Dialog, parent: Leg | None, child: Leg | None
    ) -> None:
        event = dialog_event(event_type, dialog, parent, child, self._clock())
        self._sink.publish(event, dialog.parent_call_id)

    def _bridge_if_media(self, active: _Active) -> None:
        """Both legs carry media (early or answered): they should hear each other."""
        if active.ending or not all(leg.state in _WITH_MEDIA for leg in active.legs()):
            return
        if active.ringback:  # the child's early media is overridden by our ringback
            return
        active.bridged = True
        self._hook(self.on_bridge, active)

    @staticmethod
    def _hook(hook: BridgeHook | None, active: _Active) -> None:
        if hook is None:
            return
        try:
            hook(active.parent, active.child)
        except Exception:
            log.exception("dialog %s: media hook failed", active.dialog.id)

    def _schedule(self, active: _Active, step: _Step, *, progress: bool = False) -> None:
        if self._closing:
            return
        task = asyncio.get_running_loop().create_task(self._in_turn(active, step, progress))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _in_turn(self, active: _Active, step: _Step, progress: bool = False) -> None:
        """Run ``step`` after the dialog's earlier steps; a ``progress`` step (answer, pre-answer,
        ringing) is dropped once the dialog is ending."""
        async with active.lock:
            if progress and active.ending:
                return
            try:
                await step()
            except CallError as error:  # the leg moved on meanwhile (ended, answered...)
                log.debug("dialog %s: step skipped: %s", active.dialog.id, error)
            except Exception:
                log.exception("dialog %s: step failed", active.dialog.id)

    def _leg(self, leg_id: str) -> Leg | None:
        try:
            return self._calls.get(leg_id)
        except CallNotFound:
            return None


def _check_propagation(parent: Leg, propagation: Propagation) -> None:
    field_name = "propagationOptions.childCallRinging"
    if propagation.child_call_ringing and propagation.ringback_generation:
        raise InvalidRequest({field_name: ["cannot be true when ringbackGeneration is enabled"]})
    if propagation.child_call_ringing and parent.direction is not Direction.INBOUND:
        raise InvalidRequest(
            {field_name: [f"needs an INBOUND parent call; call {parent.id!r} is OUTBOUND"]}
        )


# -- views: derived on demand, absent values left out ---------------------------------------


def _times(dialog: Dialog) -> dict[str, Any]:
    return {
        "state": dialog.state.value,
        "startTime": format_time(dialog.start_time),
        "establishTime": format_time(dialog.establish_time),
        "endTime": format_time(dialog.end_time),
    }


def dialog_view(dialog: Dialog, parent: Leg | None, child: Leg | None) -> dict[str, Any]:
    """``DialogResponse``."""
    return _compact(
        {
            "id": dialog.id,
            "callsConfigurationId": dialog.calls_configuration_id,
            "platform": dialog.platform,
            **_times(dialog),
            "parentCall": call_view(parent) if parent else None,
            "childCall": call_view(child) if child else None,
        }
    )


def dialog_log_view(dialog: Dialog) -> dict[str, Any]:
    """``DialogLogResponse``, without ``recording``: a dialog's files are listed by
    ``GET /calls/1/recordings/dialogs/{dialogId}``."""
    return _compact(
        {
            "dialogId": dialog.id,
            "callsConfigurationId": dialog.calls_configuration_id,
            "platform": dialog.platform,
            **_times(dialog),
            "parentCallId": dialog.parent_call_id,
            "childCallId": dialog.child_call_id,
            "duration": _seconds(dialog.establish_time, dialog.end_time) or 0,
            "errorCode": dialog.error_code.as_json() if dialog.error_code else None,
            "hangupSource": dialog.hangup_source.value if dialog.hangup_source else None,
        }
    )


def dialog_event(
    event_type: str, dialog: Dialog, parent: Leg | None, child: Leg | None, moment: datetime
) -> dict[str, Any]:
    """A DIALOG_* envelope: ``dialogId`` and no ``callId`` (the dialog object names both calls);
    ``apiBaseUrl`` is left out of DIALOG_CREATED, final events add the cause."""
    platform = dialog.platform or {}
    properties: dict[str, Any] = {
        "dialog": _compact(
            {
                "id": dialog.id,
                "callsConfigurationId": dialog.calls_configuration_id,
                "applicationId": platform.get("applicationId"),
                "entityId": platform.get("entityId"),
                **_times(dialog),
                "parentCall": call_view(parent) if parent else None,
                "childCall": call_view(child) if child else None,
            }
        )
    }
    if event_type in ("DIALOG_FINISHED", "DIALOG_FAILED"):
        properties.update(
            _compact(
                {
                    "errorCode": dialog.error_code.as_json() if dialog.error_code else None,
                    "hangupSource": dialog.hangup_source.value if dialog.hangup_source else None,
                }
            )
        )
    return dialog_envelope(event_type, dialog, moment, properties)


def dialog_envelope(
    event_type: str, dialog: Dialog, moment: datetime, properties: dict[str, Any]
) -> dict[str, Any]:
    """The envelope of every DIALOG_* event (dialog events, dialog recordings)."""
    return _compact(
        {
            "dialogId": dialog.id,
            "timestamp": format_time(moment),
            "callsConfigurationId": dialog.calls_configuration_id,
            "platform": dialog.platform,
            "type": event_type,
            "properties": properties,
        }
    )
