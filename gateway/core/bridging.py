"""Joining the audio of live legs, by the cheapest path that serves what is asked of it.

For two legs in a dialog, the ladder of the architecture: **bypass** (both endpoints speak RTP
with the same codec and payload types and nothing needs the audio: each endpoint is re-INVITEd
to send straight to the other, and the gateway carries only signalling), **relay** (RTP legs
with the same payload types: packets forwarded without decoding; also the path while bypass is
being set up or torn down) and **mix** (the media plane decodes, mixes N-1 and encodes).

A *tap* (a recorder, a DTMF detector) needs the audio, and so does a *source* played to a
leg (a prompt, DTMF tones): such a leg is mixed, with its dialog partner if it has one, alone
otherwise, and a bypassed pair is re-anchored first (re-INVITEs back to the gateway). When the
last tap and source go, the pair drops back to bypass. The core decides who hears
whom; the media plane moves the frames; the adapters' media ports are where audio comes and
goes, and their ``redirect_media`` is how an endpoint is told where to send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from gateway.core.calls import JOINING_CONFERENCE, MEDIA_CHANGED, CallControl
from gateway.core.leg import Leg, LegState
from gateway.core.ports import MediaRedirectFailed
from gateway.media.dtmf_sender import DIGIT_MS, DtmfSender
from gateway.media.plane import Bridge, FrameSource, MediaPlane, Overlay
from gateway.media.port import MediaPort, NativeMedia, RelayablePort

log = logging.getLogger(__name__)

# Sees each tick's frames of the legs it taps: one row per leg, in the order of ``legs``,
# then one row per prompt played to them that tick (so that recordings hold prompts).
FrameTap = Callable[[Sequence[str], np.ndarray], None]


class MediaPath(StrEnum):
    BYPASS = "bypass"
    RELAY = "relay"
    MIX = "mix"


@dataclass(eq=False)
class _Group:
    """Legs that hear each other (a dialog's two), or one tapped leg on its own."""

    legs: tuple[str, ...]
    path: MediaPath | None = None
    bridge: Bridge | None = None
    relay: list[RelayablePort] = field(default_factory=list)
    task: asyncio.Task[None] | None = None  # endpoints being moved; it re-picks when done
    no_bypass: bool = False  # an endpoint refused to be moved: stay in the path


class MediaBridges:
    def __init__(self, calls: CallControl, plane: MediaPlane, bypass: bool = True) -> None:
        self._calls = calls
        self._plane = plane
        self.bypass = bypass
        self._groups: dict[frozenset[str], _Group] = {}
        self._taps: dict[str, list[FrameTap]] = {}
        self._sources: dict[str, list[FrameSource]] = {}  # played to the leg
        # Where an endpoint sends its RTP when not to the gateway (leg id → native media of
        # the endpoint it was pointed at). Kept per leg, not per pair: a leg whose pair parted
        # keeps pointing where it was until its media is needed again (tapped, joined,
        # conferenced), so a leg about to be hung up gets no re-INVITE before its BYE.
        self._redirected: dict[str, NativeMedia] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        calls.observe(self._on_event)
        calls.observe_before(self._before_change)
        calls.observe_dtmf(self._on_digit)

    # -- what the core asks -----------------------------------------------------------------

    def join(self, *leg_ids: str) -> bool:
        """Let two legs hear each other (idempotent: called again when a leg's media changes,
        it re-picks the path). False when a leg has no media port (yet)."""
        if any(self._calls.media_port(leg_id) is None for leg_id in leg_ids):
            log.info("legs %s: no media port on every leg, audio not bridged", sorted(leg_ids))
            return False
        key = frozenset(leg_ids)
        group = self._groups.get(key)
        if group is None:
            for leg_id in leg_ids:  # a tapped leg was alone: it now joins its partner
                self._dissolve(frozenset((leg_id,)))
            group = self._groups[key] = _Group(tuple(leg_ids))
        self._repick(group)
        return True

    def part(self, *leg_ids: str) -> None:
        """The legs stop hearing each other; a leg still tapped keeps its audio alone."""
        group = self._dissolve(frozenset(leg_ids))
        if group is None:
            return
        for leg_id in group.legs:
            if self._uses_audio(leg_id) and self._calls.live(leg_id) is not None:
                self._solo(leg_id)

    def part_all(self, leg_id: str) -> None:
        """A leg ended: every bridge or relay it was in is dissolved, its taps and sources
        dropped."""
        self._taps.pop(leg_id, None)
        self._sources.pop(leg_id, None)
        self._redirected.pop(leg_id, None)
        self._locks.pop(leg_id, None)
        for key in [key for key in self._groups if leg_id in key]:
            self.part(*key)

    def tap(self, leg_id: str, tap: FrameTap) -> bool:
        """Give ``tap`` the audio of the leg and of whoever it hears, from the next tick on
        (after a re-anchoring, when the leg was bypassed). False when the leg has no media."""
        return self._use(leg_id, self._taps, tap)

    def untap(self, leg_id: str, tap: FrameTap) -> None:
        self._unuse(leg_id, self._taps, tap)

    def play(self, leg_id: str, source: FrameSource) -> bool:
        """Mix what ``source`` gives over what the leg hears, each tick, until
        :meth:`unplay` (after a re-anchoring, when the leg was bypassed: the source is not
        called meanwhile). One source may be played to both legs of a pair: their bridge
        calls it once per tick and both hear it. False when the leg has no media."""
        return self._use(leg_id, self._sources, source)

    def unplay(self, leg_id: str, source: FrameSource) -> None:
        self._unuse(leg_id, self._sources, source)

    def _use(self, leg_id: str, uses: dict[str, list[Any]], use: Any) -> bool:
        if self._calls.media_port(leg_id) is None:
            return False
        uses.setdefault(leg_id, []).append(use)
        group = self._group_of(leg_id)
        if group is None:
            self._solo(leg_id)
        else:
            self._feed_taps(group)
            self._repick(group)
        return True

    def _unuse(self, leg_id: str, uses: dict[str, list[Any]], use: Any) -> None:
        mine = uses.get(leg_id, [])
        if use in mine:
            mine.remove(use)
        if not mine:
            uses.pop(leg_id, None)
        group = self._group_of(leg_id)
        if group is None:
            return
        if len(group.legs) == 1 and not self._uses_audio(leg_id):
            self._dissolve(frozenset(group.legs))
            return
        self._feed_taps(group)  # at once, even if the path is re-picked only later
        self._repick(group)

    def _uses_audio(self, leg_id: str) -> bool:
        return bool(self._taps.get(leg_id) or self._sources.get(leg_id))

    def path(self, *leg_ids: str) -> MediaPath | None:
        """The path the legs' audio takes now (None: not joined)."""
        group = self._groups.get(frozenset(leg_ids))
        return group.path if group is not None else None

    async def settled(self) -> None:
        """Wait until no endpoint is being moved (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- reacting to the legs ---------------------------------------------------------------

    def _before_change(self, leg: Leg, change: str) -> None:
        """A conference mixes its calls: one still sending elsewhere comes back first."""
        if change == JOINING_CONFERENCE and leg.id in self._redirected:
            self._track(self._anchor(leg.id))

    def _on_event(self, leg: Leg, event: str) -> None:
        if event in ("CALL_FINISHED", "CALL_FAILED"):
            self.part_all(leg.id)
        elif event in (MEDIA_CHANGED, "CALL_ESTABLISHED"):
            group = self._group_of(leg.id)
            if group is not None and len(group.legs) == 2:
                self._repick(group)

    def _on_digit(self, leg: Leg, digit: str) -> None:
        """An endpoint's out-of-band key. Relayed and bypassed pairs carry telephone-events to
        the other endpoint themselves; a mixed pair carries audio only, so the key is sent on:
        out of band where the other endpoint takes it, else as tones."""
        group = self._group_of(leg.id)
        if group is None or len(group.legs) != 2 or group.path is not MediaPath.MIX:
            return
        partner = next(leg_id for leg_id in group.legs if leg_id != leg.id)
        if self._calls.send_dtmf(partner, digit, DIGIT_MS):
            return
        loop = asyncio.get_running_loop()

        def done() -> None:
            loop.call_soon(self.unplay, partner, tones)

        tones = DtmfSender(digit, lambda _: False, done)
        self.play(partner, tones)

    # -- choosing and building the path -----------------------------------------------------

    def _group_of(self, leg_id: str) -> _Group | None:
        for key, group in self._groups.items():
            if leg_id in key:
                return group
        return None

    def _solo(self, leg_id: str) -> None:
        group = self._groups[frozenset((leg_id,))] = _Group((leg_id,))
        self._repick(group)

    def _dissolve(self, key: frozenset[str]) -> _Group | None:
        group = self._groups.pop(key, None)
        if group is not None:
            if group.bridge is not None:
                self._plane.dissolve(group.bridge)
                group.bridge = None
            self._stop_relay(group)
        return group

    def _tapped(self, group: _Group) -> list[FrameTap]:
        """The group's taps, each once (one tap may be on both legs)."""
        taps = (tap for leg_id in group.legs for tap in self._taps.get(leg_id, []))
        return list(dict.fromkeys(taps))

    def _feed_taps(self, group: _Group) -> None:
        """Hand the group's bridge its taps and overlays (one per source, heard by the ports
        of the legs it is played to)."""
        bridge = group.bridge
        if bridge is None:
            return
        legs = group.legs
        bridge.taps[:] = [lambda frames, tap=tap: tap(legs, frames) for tap in self._tapped(group)]
        hearers: dict[FrameSource, set[int]] = {}
        for leg_id in legs:
            port = self._calls.media_port(leg_id)
            for source in self._sources.get(leg_id, []):
                if port is not None:
                    hearers.setdefault(source, set()).add(id(port))
        bridge.overlays[:] = [Overlay(source, frozenset(ids)) for source, ids in hearers.items()]

    def _wanted(self, group: _Group, ports: list[MediaPort]) -> MediaPath:
        if any(self._uses_audio(leg_id) for leg_id in group.legs) or not self._relayable(ports):
            return MediaPath.MIX
        if self.bypass and not group.no_bypass and self._bypassable(group):
            return MediaPath.BYPASS
        return MediaPath.RELAY

    def _bypassable(self, group: _Group) -> bool:
        legs = [self._calls.live(leg_id) for leg_id in group.legs]
        if any(leg is None or leg.state is not LegState.ESTABLISHED for leg in legs):
            return False  # early media stays anchored: bypass needs both answered
        first, second = (self._calls.native_media(leg_id) for leg_id in group.legs)
        return first is not None and second is not None and first.can_bypass_with(second)

    def _repick(self, group: _Group) -> None:
        if group.task is not None:
            return  # the endpoints are being moved: the move re-reads what is wanted
        ports = self._ports(group)
        if ports is None:
            return
        wanted = self._wanted(group, ports)
        moving_back = any(leg_id in self._redirected for leg_id in group.legs)
        if wanted is MediaPath.MIX and not (moving_back and self._relayable(ports)):
            self._mix(group, ports)
        else:  # the relay also carries the audio while endpoints move to and from bypass
            self._relay(group, ports)
        if self._next_move(group) is not None:
            group.task = self._track(self._move(group))
        elif wanted is MediaPath.BYPASS:
            group.path = MediaPath.BYPASS

    def _ports(self, group: _Group) -> list[MediaPort] | None:
        ports = [self._calls.media_port(leg_id) for leg_id in group.legs]
        return None if any(port is None for port in ports) else ports  # type: ignore[return-value]

    @staticmethod
    def _relayable(ports: list[MediaPort]) -> bool:
        if len(ports) != 2:
            return False
        first, second = ports
        return isinstance(first, RelayablePort) and first.can_relay_with(second)

    def _next_move(self, group: _Group) -> tuple[str, NativeMedia | None] | None:
        """The next endpoint to re-INVITE, and where to: each endpoint sends to the other
        when the pair is to be bypassed, to the gateway otherwise. None: all are in place."""
        ports = self._ports(group)
        if ports is None:
            return None
        desired: dict[str, NativeMedia | None] = dict.fromkeys(group.legs)
        if self._wanted(group, ports) is MediaPath.BYPASS:
            first, second = group.legs
            desired = {first: self._native(second), second: self._native(first)}
        for leg_id, target in desired.items():
            if self._redirected.get(leg_id) != target:
                return leg_id, target
        return None

    def _native(self, leg_id: str) -> NativeMedia:
        native = self._calls.native_media(leg_id)
        assert native is not None  # checked by _bypassable
        return native

    def _mix(self, group: _Group, ports: list[MediaPort]) -> None:
        self._stop_relay(group)
        if group.bridge is None:
            group.bridge = self._plane.bridge(*ports)
        self._feed_taps(group)
        group.path = MediaPath.MIX

    def _relay(self, group: _Group, ports: list[MediaPort]) -> None:
        if group.bridge is not None:
            self._plane.dissolve(group.bridge)
            group.bridge = None
        if not group.relay:
            first, second = ports
            assert isinstance(first, RelayablePort) and isinstance(second, RelayablePort)
            first.relay_with(second)
            group.relay = [first, second]
        group.path = MediaPath.RELAY

    def _stop_relay(self, group: _Group) -> None:
        for port in group.relay:
            port.stop_relay()
        group.relay = []

    async def _move(self, group: _Group) -> None:
        """Re-INVITE the endpoints one by one, to each other (bypass) or back to the gateway,
        looking afresh before each step at what the pair wants (a recording may have started
        meanwhile). The relay carries the audio while they move, so nothing is lost."""
        await asyncio.sleep(0)  # the other observers of this same change come first
        try:
            while self._groups.get(frozenset(group.legs)) is group:
                step = self._next_move(group)
                if step is None:
                    break
                await self._redirect(*step)
        except MediaRedirectFailed as error:
            log.warning("legs %s: moving media failed, staying in the path: %s", group.legs, error)
            group.no_bypass = True
            for leg_id in group.legs:  # best effort: everyone back to the gateway
                await self._anchor(leg_id)
        finally:
            group.task = None
        for current in dict.fromkeys(self._group_of(leg_id) for leg_id in group.legs):
            if current is not None:  # this pair, or what its legs are in now
                self._repick(current)

    async def _redirect(self, leg_id: str, target: NativeMedia | None) -> None:
        """One re-INVITE, one at a time per endpoint (a pair parted mid-move and the leg's
        next pair, or a conference, may both want to move it)."""
        async with self._locks.setdefault(leg_id, asyncio.Lock()):
            if self._redirected.get(leg_id) == target or self._calls.live(leg_id) is None:
                return
            await self._calls.redirect_media(leg_id, target)
            if target is None:
                self._redirected.pop(leg_id, None)
            else:
                self._redirected[leg_id] = target
            log.info("call %s: media %s", leg_id, "to the gateway" if target is None else target)

    async def _anchor(self, leg_id: str) -> None:
        """Bring an endpoint's RTP back to the gateway; it is forgotten either way (an
        endpoint that refuses this is not asked again)."""
        try:
            await self._redirect(leg_id, None)
        except MediaRedirectFailed as error:
            log.warning("call %s: media could not be brought back: %s", leg_id, error)
            self._redirected.pop(leg_id, None)

    def _track(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
