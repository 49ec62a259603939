"""Joining the audio of live legs through the media plane: two legs of a dialog, or the
caller and the early media of the callee. The core decides who hears whom; the media plane
moves the frames; the adapters' media ports are where frames come from and go to."""

from __future__ import annotations

import logging

from gateway.core.calls import CallControl
from gateway.core.leg import Leg
from gateway.media.plane import Bridge, MediaPlane

log = logging.getLogger(__name__)


class MediaBridges:
    def __init__(self, calls: CallControl, plane: MediaPlane) -> None:
        self._calls = calls
        self._plane = plane
        self._bridges: dict[frozenset[str], Bridge] = {}
        calls.observe(self._on_event)

    def _on_event(self, leg: Leg, event: str) -> None:
        if event in ("CALL_FINISHED", "CALL_FAILED"):
            self.part_all(leg.id)

    def join(self, *leg_ids: str) -> bool:
        """Let the legs hear each other; False when a leg has no media port (yet)."""
        key = frozenset(leg_ids)
        if key in self._bridges:
            return True
        ports = [self._calls.media_port(leg_id) for leg_id in leg_ids]
        if any(port is None for port in ports):
            log.info("legs %s: no media port on every leg, audio not bridged", sorted(key))
            return False
        self._bridges[key] = self._plane.bridge(*ports)  # type: ignore[arg-type]
        return True

    def part(self, *leg_ids: str) -> None:
        bridge = self._bridges.pop(frozenset(leg_ids), None)
        if bridge is not None:
            self._plane.dissolve(bridge)

    def part_all(self, leg_id: str) -> None:
        """A leg ended: every bridge it was in is dissolved."""
        for key in [key for key in self._bridges if leg_id in key]:
            self._plane.dissolve(self._bridges.pop(key))
