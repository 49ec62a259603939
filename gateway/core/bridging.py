"""Joining the audio of live legs: relayed packet for packet when both are RTP legs with the
same payload types, mixed through the media plane otherwise. The core decides who hears whom;
the media plane moves the frames; the adapters' media ports are where audio comes and goes."""

from __future__ import annotations

import logging

from gateway.core.calls import CallControl
from gateway.core.leg import Leg
from gateway.media.plane import Bridge, MediaPlane
from gateway.media.port import RelayablePort

log = logging.getLogger(__name__)


class MediaBridges:
    def __init__(self, calls: CallControl, plane: MediaPlane) -> None:
        self._calls = calls
        self._plane = plane
        self._bridges: dict[frozenset[str], Bridge] = {}
        self._relays: dict[frozenset[str], list[RelayablePort]] = {}
        calls.observe(self._on_event)

    def _on_event(self, leg: Leg, event: str) -> None:
        if event in ("CALL_FINISHED", "CALL_FAILED"):
            self.part_all(leg.id)

    def join(self, *leg_ids: str) -> bool:
        """Let the legs hear each other: two legs that can relay (RTP legs with the same
        payload types) forward packets without decoding; others are mixed by the media plane.
        False when a leg has no media port (yet)."""
        key = frozenset(leg_ids)
        if key in self._bridges or key in self._relays:
            return True
        ports = [self._calls.media_port(leg_id) for leg_id in leg_ids]
        if any(port is None for port in ports):
            log.info("legs %s: no media port on every leg, audio not bridged", sorted(key))
            return False
        first = ports[0]
        if len(ports) == 2 and isinstance(first, RelayablePort) and first.relay_with(ports[1]):
            self._relays[key] = [first, ports[1]]  # type: ignore[list-item]
            return True
        self._bridges[key] = self._plane.bridge(*ports)  # type: ignore[arg-type]
        return True

    def part(self, *leg_ids: str) -> None:
        key = frozenset(leg_ids)
        bridge = self._bridges.pop(key, None)
        if bridge is not None:
            self._plane.dissolve(bridge)
        for port in self._relays.pop(key, []):
            port.stop_relay()

    def part_all(self, leg_id: str) -> None:
        """A leg ended: every bridge or relay it was in is dissolved."""
        for key in [key for key in (*self._bridges, *self._relays) if leg_id in key]:
            self.part(*key)
