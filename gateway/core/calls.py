"""Call control: the one place that drives legs through their lifecycle.

The API calls the verbs (``create_call``, ``answer``, ``hangup``...); adapters report what the
far end did through the ``on_*`` callbacks; every change is saved, then published as an event.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.core import errors
from gateway.core.errors import ErrorCode
from gateway.core.leg import Direction, HangupSource, Leg, LegState, MachineDetectionRequest
from gateway.core.ports import (
    ConfigurationDirectory,
    EventSink,
    LegAdapter,
    LegStore,
    MediaRedirectFailed,
    NumberDirectory,
)
from gateway.core.query import LegQuery
from gateway.core.views import call_event
from gateway.media.port import MediaPort, NativeMedia
from gateway.timeutil import utcnow

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 60
DEFAULT_MAX_DURATION = 28800
# What observers see when an endpoint changed its media; never published as an event.
MEDIA_CHANGED = "MEDIA_CHANGED"
# What ``observe_before`` observers see, never published either: the leg has ended (its final
# event comes next), or it has just been put in a conference (it is saved next).
ENDING = "ENDING"
JOINING_CONFERENCE = "JOINING_CONFERENCE"


class CallError(Exception):
    """A request the core refuses; the API turns it into an HTTP error."""


class CallNotFound(CallError):
    def __init__(self, leg_id: str) -> None:
        super().__init__(f"Call {leg_id!r} was not found.")
        self.leg_id = leg_id


class WrongState(CallError):
    """The verb does not apply to the call as it is now (answering a finished call...)."""


class InvalidRequest(CallError):
    def __init__(self, field_errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k} {', '.join(v)}" for k, v in field_errors.items()))
        self.field_errors = field_errors


class NotRouted(CallError):
    """An inbound call to a number that no calls configuration owns."""


@dataclass
class CallRequest:
    endpoint: dict[str, Any]
    calls_configuration_id: str
    from_: str | None = None
    from_display_name: str | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    max_duration: int = DEFAULT_MAX_DURATION
    custom_data: dict[str, str] = field(default_factory=dict)
    external_id: str | None = None
    platform: dict[str, str] | None = None
    parent_call_id: str | None = None
    dialog_id: str | None = None
    machine_detection: MachineDetectionRequest | None = None


@dataclass
class _Live:
    leg: Leg
    adapter: LegAdapter
    timer: asyncio.TimerHandle | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class CallControl:
    def __init__(
        self,
        store: LegStore,
        sink: EventSink,
        configurations: ConfigurationDirectory,
        numbers: NumberDirectory,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._sink = sink
        self._configurations = configurations
        self._numbers = numbers
        self._clock = clock
        self._adapters: dict[str, list[LegAdapter]] = {}
        self._live: dict[str, _Live] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._observers: list[Callable[[Leg, str], None]] = []
        self._before: list[Callable[[Leg, str], None]] = []
        self._dtmf_observers: list[Callable[[Leg, str], None]] = []

    # -- wiring ---------------------------------------------------------------------------

    def observe(self, observer: Callable[[Leg, str], None]) -> None:
        """Call ``observer(leg, event_type)`` after each event of every leg (dialogs, bridges)."""
        self._observers.append(observer)

    def observe_before(self, observer: Callable[[Leg, str], None]) -> None:
        """Call ``observer(leg, change)`` before a change is saved and published (ENDING or
        JOINING_CONFERENCE): what the leg carries, a recording, ends before the leg's final
        event, as the event sequences want."""
        self._before.append(observer)

    def observe_dtmf(self, observer: Callable[[Leg, str], None]) -> None:
        """Call ``observer(leg, digit)`` for each digit a live leg's endpoint keys."""
        self._dtmf_observers.append(observer)

    def register(self, adapter: LegAdapter) -> None:
        """Add an adapter; of several for one endpoint type, the first that serves an endpoint
        carries it (the simulated PSTN its own numbers, a carrier trunk every other number)."""
        self._adapters.setdefault(adapter.endpoint_type, []).append(adapter)

    def _adapter_for(self, endpoint: dict[str, Any]) -> LegAdapter | None:
        for adapter in self._adapters.get(str(endpoint.get("type")), []):
            if adapter.serves(endpoint):
                return adapter
        return None

    @property
    def endpoint_types(self) -> list[str]:
        return sorted(self._adapters)

    # -- reading --------------------------------------------------------------------------

    def get(self, leg_id: str) -> Leg:
        live = self._live.get(leg_id)
        leg = live.leg if live else self._store.get(leg_id)
        if leg is None:
            raise CallNotFound(leg_id)
        return leg

    def query(self, query: LegQuery, offset: int, limit: int) -> tuple[list[Leg], int]:
        return self._store.query(query, offset, limit)

    def live(self, leg_id: str) -> Leg | None:
        """The leg if it is still live."""
        live = self._live.get(leg_id)
        return live.leg if live else None

    def media_port(self, leg_id: str) -> MediaPort | None:
        """The live leg's media port, from the adapter that carries it."""
        live = self._live.get(leg_id)
        return live.adapter.media_port(live.leg) if live is not None else None

    def native_media(self, leg_id: str) -> NativeMedia | None:
        """How the live leg's endpoint receives RTP itself (None: not an RTP endpoint)."""
        live = self._live.get(leg_id)
        return live.adapter.native_media(live.leg) if live is not None else None

    async def redirect_media(self, leg_id: str, target: NativeMedia | None) -> NativeMedia:
        """Point the live leg's RTP at ``target`` (bypass) or back at the gateway (None);
        raises :class:`~gateway.core.ports.MediaRedirectFailed` when it does not take."""
        live = self._live.get(leg_id)
        if live is None:
            raise MediaRedirectFailed(f"call {leg_id} has ended")
        return await live.adapter.redirect_media(live.leg, target)

    def send_dtmf(self, leg_id: str, digit: str, duration_ms: int) -> bool:
        """Start one digit out of band on the live leg; False: the caller plays it in-band."""
        live = self._live.get(leg_id)
        return live is not None and live.adapter.send_dtmf(live.leg, digit, duration_ms)

    def update_custom_data(self, leg_id: str, custom_data: dict[str, str] | None) -> None:
        """An action's ``customData`` updates the live call's (later events carry it)."""
        live = self._live.get(leg_id)
        if live is not None and custom_data:
            self._merge_custom_data(live.leg, custom_data)
            self._store.save(live.leg)

    def note_machine_detection(self, leg_id: str, properties: dict[str, Any]) -> None:
        """The live leg's answering machine detection result (``Call.machineDetection``)."""
        live = self._live.get(leg_id)
        if live is not None:
            live.leg.machine_detection = properties
            self._store.save(live.leg)

    def join_dialog(self, leg_id: str, dialog_id: str | None) -> None:
        """Mark a live leg as part of a dialog (or of none); later events carry the id."""
        live = self._live.get(leg_id)
        if live is not None:
            live.leg.dialog_id = dialog_id
            self._store.save(live.leg)

    def join_conference(self, leg_id: str, conference_id: str | None) -> None:
        """Mark a live leg as in a conference (or in none); its log keeps every conference."""
        live = self._live.get(leg_id)
        if live is not None:
            live.leg.conference_id = conference_id
            if conference_id is not None:
                self._tell_before(live.leg, JOINING_CONFERENCE)
            if conference_id is not None and conference_id not in live.leg.conference_ids:
                live.leg.conference_ids.append(conference_id)
            self._store.save(live.leg)

    @property
    def live_count(self) -> int:
        return len(self._live)

    # -- verbs ----------------------------------------------------------------------------

    async def create_call(
        self, request: CallRequest, before_start: Callable[[Leg], None] | None = None
    ) -> Leg:
        """Place an outbound call. ``before_start`` sees the new leg before its CALL_STARTED
        (a dialog publishes DIALOG_CREATED there, so that it comes first)."""
        problems: dict[str, list[str]] = {}
        if not self._configurations.exists(request.calls_configuration_id):
            problems["callsConfigurationId"] = [
                f"calls configuration {request.calls_configuration_id!r} does not exist"
            ]
        endpoint_type = str(request.endpoint.get("type"))
        adapter = self._adapter_for(request.endpoint)
        if adapter is None:
            served = ", ".join(self.endpoint_types)
            problems["endpoint.type"] = [
                f"{endpoint_type} endpoints are not served (served: {served})"
            ]
        else:
            problems.update(adapter.check_endpoint(request.endpoint))
        if problems:
            raise InvalidRequest(problems)
        assert adapter is not None
        leg = Leg(
            id=str(uuid.uuid4()),
            direction=Direction.OUTBOUND,
            endpoint=request.endpoint,
            calls_configuration_id=request.calls_configuration_id,
            start_time=self._clock(),
            state=LegState.CALLING,
            from_=request.from_,
            to=adapter_address(request.endpoint),
            from_display_name=request.from_display_name,
            custom_data=dict(request.custom_data),
            external_id=request.external_id,
            platform=request.platform,
            parent_call_id=request.parent_call_id,
            dialog_id=request.dialog_id,
            connect_timeout=request.connect_timeout,
            max_duration=request.max_duration,
            machine_detection_request=request.machine_detection,
        )
        if before_start is not None:
            before_start(leg)
        live = self._admit(leg, adapter, "CALL_STARTED")
        live.timer = self._later(request.connect_timeout, leg.id, errors.NO_ANSWER)
        try:
            await adapter.originate(leg)
        except Exception:
            log.exception("originating call %s failed", leg.id)
            self.on_ended(leg.id, errors.SERVICE_UNAVAILABLE, HangupSource.PLATFORM)
        return leg

    async def send_ringing(self, leg_id: str) -> None:
        live = self._inbound_alerting(leg_id, "send ringing on", {LegState.RINGING})
        await live.adapter.send_ringing(live.leg)

    async def pre_answer(self, leg_id: str, custom_data: dict[str, str] | None) -> None:
        live = self._inbound_alerting(leg_id, "pre-answer", {LegState.RINGING})
        self._merge_custom_data(live.leg, custom_data)
        await live.adapter.pre_answer(live.leg)

    async def answer(self, leg_id: str, custom_data: dict[str, str] | None) -> None:
        live = self._inbound_alerting(
            leg_id, "answer", {LegState.RINGING, LegState.PRE_ESTABLISHED}
        )
        self._merge_custom_data(live.leg, custom_data)
        await live.adapter.answer(live.leg)

    async def hangup(
        self, leg_id: str, error_name: str | None, source: HangupSource = HangupSource.API
    ) -> Leg:
        """``source`` PLATFORM: the gateway ends the call on its own (a dialog's other leg)."""
        live = self._live.get(leg_id)
        if live is None:
            leg = self.get(leg_id)
            raise WrongState(f"Call {leg_id!r} has already ended ({leg.state}).")
        cause = self._hangup_cause(live.leg, error_name)
        await live.adapter.hangup(live.leg, cause)
        self.on_ended(leg_id, cause, source)
        return live.leg

    # -- adapter callbacks ----------------------------------------------------------------

    def receive_call(
        self,
        adapter: LegAdapter,
        endpoint: dict[str, Any],
        from_: str | None,
        to: str,
        custom_data: dict[str, str] | None = None,
        calls_configuration_id: str | None = None,
    ) -> Leg:
        """A call arrives at a number: a new inbound leg and CALL_RECEIVED on its configuration.
        ``calls_configuration_id`` names it when the caller, not the number, decides (a WebRTC
        identity's application)."""
        config_id = calls_configuration_id or self._numbers.configuration_for(to)
        if config_id is None or not self._configurations.exists(config_id):
            raise NotRouted(f"{to} is not linked to a calls configuration")
        leg = Leg(
            id=str(uuid.uuid4()),
            direction=Direction.INBOUND,
            endpoint=endpoint,
            calls_configuration_id=config_id,
            start_time=self._clock(),
            state=LegState.RINGING,
            from_=from_,
            to=to,
            custom_data=dict(custom_data or {}),
        )
        self._admit(leg, adapter, "CALL_RECEIVED")
        return leg

    def on_ringing(self, leg_id: str) -> None:
        self._advance(leg_id, LegState.RINGING, "CALL_RINGING")

    def on_early_media(self, leg_id: str) -> None:
        self._advance(leg_id, LegState.PRE_ESTABLISHED, "CALL_PRE_ESTABLISHED")

    def on_answered(self, leg_id: str) -> None:
        live = self._advance(leg_id, LegState.ESTABLISHED, "CALL_ESTABLISHED")
        if live is not None:
            live.cancel_timer()
            if live.leg.max_duration:
                live.timer = self._later(live.leg.max_duration, leg_id, errors.NORMAL_HANGUP)

    def on_media_changed(self, leg_id: str) -> None:
        """The endpoint changed its own media (a re-INVITE: new address, hold, codec): the
        observers re-pick the media path. Nothing is published: the Calls API has no event."""
        live = self._live.get(leg_id)
        if live is not None:
            for observer in list(self._observers):
                observer(live.leg, MEDIA_CHANGED)

    def on_user_muted(self, leg_id: str, muted: bool) -> None:
        """The person muted or unmuted their own microphone (the endpoint sends silence
        meanwhile): CALL_MEDIA_CHANGED with ``userMuted``; conferences tell their participants."""
        live = self._live.get(leg_id)
        if live is not None and live.leg.user_muted != muted:
            live.leg.user_muted = muted
            self._record(live.leg, "CALL_MEDIA_CHANGED")

    def on_dtmf(self, leg_id: str, digit: str) -> None:
        """The endpoint keyed ``digit`` out of band (RFC 4733, a simulated phone's keypad);
        digits in the audio are found by the core itself, while an action listens for them."""
        live = self._live.get(leg_id)
        if live is not None:
            for observer in list(self._dtmf_observers):
                observer(live.leg, digit)

    def fail_soon(self, leg_id: str, cause: ErrorCode) -> None:
        """An adapter cannot place the call it was asked to (nobody to reach): the platform
        ends it with ``cause`` right after the request that created it has been answered."""
        asyncio.get_running_loop().call_soon(self.on_ended, leg_id, cause, HangupSource.PLATFORM)

    def on_ended(
        self, leg_id: str, cause: ErrorCode, source: HangupSource = HangupSource.ENDPOINT
    ) -> None:
        live = self._live.pop(leg_id, None)
        if live is None:
            log.debug("end of call %s that has already ended", leg_id)
            return
        live.cancel_timer()
        live.leg.end(cause, source, self._clock())
        self._tell_before(live.leg, ENDING)
        event = "CALL_FINISHED" if live.leg.state is LegState.FINISHED else "CALL_FAILED"
        self._record(live.leg, event)

    # -- lifecycle ------------------------------------------------------------------------

    def recover(self) -> int:
        """End the calls a previous process left open: their history must not stay live."""
        orphans = self._store.unfinished()
        for leg in orphans:
            cause = (
                errors.NORMAL_HANGUP
                if leg.state is LegState.ESTABLISHED
                else errors.SERVICE_UNAVAILABLE
            )
            leg.end(cause, HangupSource.PLATFORM, self._clock())
            event = "CALL_FINISHED" if leg.state is LegState.FINISHED else "CALL_FAILED"
            self._record(leg, event)
        return len(orphans)

    async def close(self) -> None:
        """Hang up every live call (each gets its final event), then drop pending timers."""
        for leg_id in list(self._live):
            live = self._live[leg_id]
            cause = (
                errors.NORMAL_HANGUP
                if live.leg.state is LegState.ESTABLISHED
                else errors.SERVICE_UNAVAILABLE
            )
            try:
                await live.adapter.hangup(live.leg, cause)
            finally:
                self.on_ended(leg_id, cause, HangupSource.PLATFORM)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- internals ------------------------------------------------------------------------

    def _admit(self, leg: Leg, adapter: LegAdapter, event: str) -> _Live:
        live = _Live(leg, adapter)
        self._live[leg.id] = live
        self._record(leg, event)
        return live

    def _record(self, leg: Leg, event: str) -> None:
        self._store.save(leg)
        self._sink.publish(call_event(event, leg, self._clock()), order_key(leg))
        for observer in list(self._observers):
            observer(leg, event)

    def _tell_before(self, leg: Leg, change: str) -> None:
        for observer in list(self._before):
            observer(leg, change)

    def _advance(self, leg_id: str, state: LegState, event: str) -> _Live | None:
        live = self._live.get(leg_id)
        if live is None:
            log.debug("%s for call %s that has already ended", event, leg_id)
            return None
        if live.leg.state is state:
            return None  # a repeated provisional response changes nothing
        live.leg.transition(state, self._clock())
        self._record(live.leg, event)
        return live

    def _inbound_alerting(self, leg_id: str, verb: str, states: set[LegState]) -> _Live:
        live = self._live.get(leg_id)
        leg = live.leg if live else self.get(leg_id)
        if leg.direction is not Direction.INBOUND:
            raise WrongState(f"Cannot {verb} call {leg_id!r}: it is an outbound call.")
        if live is None or leg.state not in states:
            raise WrongState(f"Cannot {verb} call {leg_id!r} in state {leg.state}.")
        return live

    @staticmethod
    def _merge_custom_data(leg: Leg, custom_data: dict[str, str] | None) -> None:
        if custom_data:
            leg.custom_data.update(custom_data)

    @staticmethod
    def _hangup_cause(leg: Leg, error_name: str | None) -> ErrorCode:
        established = leg.state is LegState.ESTABLISHED
        if error_name is None:
            if established:
                return errors.NORMAL_HANGUP
            return errors.CANCELLED if leg.direction is Direction.OUTBOUND else errors.REJECTED
        cause = errors.BY_NAME[error_name]
        if cause.needs_established and not established:
            raise WrongState(
                f"errorCode {cause.name} needs an established call; call {leg.id!r} is {leg.state}."
            )
        if not cause.needs_established and established:
            raise WrongState(
                f"errorCode {cause.name} is for calls that could not be established; "
                f"call {leg.id!r} is ESTABLISHED (use NORMAL_HANGUP)."
            )
        if cause.name == "MACHINE_DETECTED" and leg.direction is not Direction.OUTBOUND:
            raise WrongState("errorCode MACHINE_DETECTED is for outbound calls only.")
        return cause

    def _later(self, seconds: float, leg_id: str, cause: ErrorCode) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(seconds, self._on_timer, leg_id, cause)

    def _on_timer(self, leg_id: str, cause: ErrorCode) -> None:
        task = asyncio.get_running_loop().create_task(self._expire(leg_id, cause))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, leg_id: str, cause: ErrorCode) -> None:
        """connectTimeout or maxDuration ran out: the platform hangs up."""
        live = self._live.get(leg_id)
        if live is None:
            return
        live.timer = None
        try:
            await live.adapter.hangup(live.leg, cause)
        finally:
            self.on_ended(leg_id, cause, HangupSource.PLATFORM)


def order_key(leg: Leg) -> str:
    """One ordering key per conversation: a child leg's events queue behind its parent's."""
    return leg.parent_call_id or leg.id


def adapter_address(endpoint: dict[str, Any]) -> str | None:
    """The callee identifier an endpoint names (``to`` of an outbound call)."""
    for key in ("phoneNumber", "username", "identity", "identifier"):
        if endpoint.get(key):
            return str(endpoint[key])
    return None
