"""The media plane's clock: one 20 ms tick drives every bridge (no task per leg or packet).

A bridge joins ports: each tick it reads one frame from every port (silence when a port has
nothing), mixes N-1, and writes each port what it should hear. Ticks are scheduled against an
absolute timeline, so timing does not drift with the work done in a tick.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gateway.media.frame import FRAME_MS, NARROWBAND, samples_per_frame
from gateway.media.mixer import mix_minus
from gateway.media.port import MediaPort

log = logging.getLogger(__name__)

TICK = FRAME_MS / 1000


@dataclass(eq=False)
class Bridge:
    """Ports that hear each other; ``deaf`` ports hear silence, ``muted`` ones are not heard.

    Each of ``taps`` sees the frames read each tick (one row per port, in ``ports`` order), so
    that talk detection and recording need no second read of the ports.
    """

    ports: list[MediaPort] = field(default_factory=list)
    muted: set[int] = field(default_factory=set)  # id(port)
    deaf: set[int] = field(default_factory=set)
    sample_rate: int = NARROWBAND
    taps: list[Callable[[np.ndarray], None]] = field(default_factory=list)

    def add(self, port: MediaPort) -> None:
        if port not in self.ports:
            self.ports.append(port)

    def remove(self, port: MediaPort) -> None:
        if port in self.ports:
            self.ports.remove(port)
        self.muted.discard(id(port))
        self.deaf.discard(id(port))

    def tick(self) -> None:
        if not self.ports:
            return
        size = samples_per_frame(self.sample_rate)
        frames = np.zeros((len(self.ports), size), dtype=np.int16)
        for row, port in enumerate(self.ports):
            samples = port.read()
            if samples is not None and len(samples) == size:
                frames[row] = samples
        for tap in self.taps:
            tap(frames)
        gains = None
        if self.muted:
            gains = np.array([0 if id(p) in self.muted else 1 for p in self.ports], np.int32)
        heard = mix_minus(frames, gains)
        for row, port in enumerate(self.ports):
            port.write(heard[row] if id(port) not in self.deaf else np.zeros_like(heard[row]))


class MediaPlane:
    def __init__(self) -> None:
        self.bridges: set[Bridge] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._next = 0.0
        self.ticks = 0
        self.late_ticks = 0

    def bridge(self, *ports: MediaPort) -> Bridge:
        bridge = Bridge(list(ports))
        self.bridges.add(bridge)
        self._ensure_running()
        return bridge

    def dissolve(self, bridge: Bridge) -> None:
        self.bridges.discard(bridge)

    def _ensure_running(self) -> None:
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._next = loop.time() + TICK
            self._handle = loop.call_at(self._next, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        for bridge in list(self.bridges):
            try:
                bridge.tick()
            except Exception:
                log.exception("a bridge failed its tick; dissolving it")
                self.bridges.discard(bridge)
        self.ticks += 1
        if not self.bridges:
            self._handle = None
            return
        self._next += TICK
        now = loop.time()
        if now > self._next + TICK:  # fell behind by more than a frame: skip, don't burst
            self.late_ticks += 1
            self._next = now + TICK
        self._handle = loop.call_at(self._next, self._tick)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.bridges.clear()
