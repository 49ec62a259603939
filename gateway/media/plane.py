"""The media plane's clock: one 20 ms tick drives every bridge (no task per leg or packet).

A bridge joins ports: each tick it reads one frame from every port (silence when a port has
nothing), mixes N-1, and writes each port what it should hear. Ticks are scheduled against an
absolute timeline, so timing does not drift with the work done in a tick.

A tick does all bridges at once: every port is one row of one frames array, so what is left
in Python per leg is a call or two. Ports that hand over raw payloads of a stateless codec
(:class:`~gateway.media.port.PayloadPort`: G.711 legs) are decoded and encoded with one table
lookup per codec for the whole tick, and every two-party bridge is mixed by one gather (each
side hears the other's row, which is what N-1 gives for two); larger bridges are mixed one
``mix_minus`` each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from gateway.media.codecs import Codec
from gateway.media.frame import FRAME_MS, NARROWBAND, samples_per_frame
from gateway.media.mixer import mix_minus
from gateway.media.port import MediaPort
from gateway.media.socketset import SocketSet

log = logging.getLogger(__name__)

TICK = FRAME_MS / 1000
# Ticks a plane that fell behind runs back to back to catch up; further behind, it skips to
# now. A skipped tick would leave every leg's jitter buffer a frame deeper (20 ms more delay
# on every call until the buffers shed it, a second later at best); a tick caught up costs
# no more work than one on time, since the packets are there to handle either way.
CATCH_UP = 5

OnFailure = Callable[["Bridge", Exception], None]
# Gives the next frame of something played into a bridge (a prompt, a beep, DTMF tones), or
# None when it has nothing this tick. Called once per tick, from the tick.
FrameSource = Callable[[], np.ndarray | None]


@dataclass(eq=False)
class Overlay:
    """Audio added to what some of a bridge's ports hear: ``hearers`` are ``id(port)``s, None
    for every port. The ports' own audio still flows: the overlay is mixed over it."""

    source: FrameSource
    hearers: frozenset[int] | None = None


@dataclass(eq=False)
class Bridge:
    """Ports that hear each other; ``deaf`` ports hear silence, ``muted`` ones are not heard.

    Each of ``taps`` sees the frames read each tick (one row per port, in ``ports`` order),
    then one row per overlay that played this tick, so that talk detection and recording need
    no second read of the ports, and a recording holds the prompts its calls heard.
    """

    ports: list[MediaPort] = field(default_factory=list)
    muted: set[int] = field(default_factory=set)  # id(port)
    deaf: set[int] = field(default_factory=set)
    sample_rate: int = NARROWBAND
    taps: list[Callable[[np.ndarray], None]] = field(default_factory=list)
    overlays: list[Overlay] = field(default_factory=list)

    def add(self, port: MediaPort) -> None:
        if port not in self.ports:
            self.ports.append(port)

    def remove(self, port: MediaPort) -> None:
        if port in self.ports:
            self.ports.remove(port)
        self.muted.discard(id(port))
        self.deaf.discard(id(port))

    def tick(self) -> None:
        """One tick of this bridge alone; what a port or tap raises propagates."""
        tick_bridges([self], _reraise)


def _reraise(bridge: Bridge, exc: Exception) -> None:
    raise exc


def tick_bridges(bridges: Iterable[Bridge], on_failure: OnFailure) -> None:
    """One tick of many bridges, batched per sample rate. A bridge whose port raises goes to
    ``on_failure`` and is written nothing more this tick; the others carry on. A tap that
    raises is removed, alone: its bridge's calls keep their audio; so is an overlay."""
    by_rate: dict[int, list[Bridge]] = {}
    for bridge in bridges:
        if bridge.ports:
            by_rate.setdefault(bridge.sample_rate, []).append(bridge)
    for rate, group in by_rate.items():
        _Batch(group, rate, on_failure).tick()


Span = tuple[Bridge, int, tuple[MediaPort, ...]]  # a bridge, its first row, its ports


class _Batch:
    """One tick of bridges at one rate. The frames array has a row per port and one more that
    stays silent: what a two-party port hears when the other is muted or it is deaf."""

    def __init__(self, bridges: list[Bridge], rate: int, on_failure: OnFailure) -> None:
        self.size = samples_per_frame(rate)
        self.on_failure = on_failure
        self.failed: set[Bridge] = set()
        self.spans: list[Span] = []
        self.ports: list[MediaPort] = []
        for bridge in bridges:
            ports = tuple(bridge.ports)  # a tap may change the bridge: keep this tick's rows
            self.spans.append((bridge, len(self.ports), ports))
            self.ports.extend(ports)
        self.coded: dict[Codec, list[int]] = {}  # the rows of payload ports, by codec
        self.plain = [True] * len(self.ports)  # rows whose port is read() and written
        for row, port in enumerate(self.ports):
            codec = getattr(port, "batch_codec", None)
            if codec is not None and codec.sample_rate == rate:  # else read() gives silence
                self.coded.setdefault(codec, []).append(row)
                self.plain[row] = False
        silent = len(self.ports)
        self.sources: list[int] = []  # the row each row hears (two-party), else the silent one
        self.large: list[Span] = []  # bridges of three or more: N-1 each
        for span in self.spans:
            bridge, first, ports = span
            if len(ports) == 2:
                a, b = ports
                muted, deaf = bridge.muted, bridge.deaf
                self.sources.append(silent if id(a) in deaf or id(b) in muted else first + 1)
                self.sources.append(silent if id(b) in deaf or id(a) in muted else first)
            else:
                self.sources.extend([silent] * len(ports))
                if len(ports) > 2:
                    self.large.append(span)

    def tick(self) -> None:
        frames = self.read()
        played = self.play()
        for bridge, first, ports in self.spans:
            if bridge.taps and bridge not in self.failed:
                block = frames[first : first + len(ports)]
                extra = [samples for _, samples in played.get(bridge, ())]
                if extra:
                    block = np.vstack([block, *extra])
                for tap in list(bridge.taps):
                    try:
                        tap(block)
                    except Exception:  # the calls keep their audio; only the tap goes
                        log.exception("a tap of a bridge failed; removing it")
                        bridge.taps.remove(tap)
        heard = self.mix(frames)
        self.overlay(heard, played)
        self.write(heard)

    def fail(self, bridge: Bridge, exc: Exception) -> None:
        self.failed.add(bridge)
        self.on_failure(bridge, exc)

    def read(self) -> np.ndarray:
        size, plain = self.size, self.plain
        frames = np.zeros((len(self.ports) + 1, size), dtype=np.int16)
        payloads: list[bytes | None] = [None] * len(self.ports)
        for bridge, first, ports in self.spans:
            try:
                for row, port in enumerate(ports, first):
                    if plain[row]:
                        samples = port.read()
                        if samples is not None and len(samples) == size:
                            frames[row] = samples
                    else:
                        payloads[row] = port.pull()  # type: ignore[attr-defined]
            except Exception as exc:
                self.fail(bridge, exc)
        for codec, rows in self.coded.items():
            self.decode(codec, rows, payloads, frames)
        return frames

    def decode(
        self, codec: Codec, rows: list[int], payloads: list[bytes | None], frames: np.ndarray
    ) -> None:
        """All legs' payloads in one lookup; a leg with none (or of another size) is concealed."""
        size, ports = self.size, self.ports
        got: list[int] = []
        data: list[bytes] = []
        for row in rows:
            payload = payloads[row]
            if payload is not None and len(payload) == size:
                got.append(row)
                data.append(payload)
        if got:
            frames[got] = codec.decode_batch(data)
        received = None if len(got) == len(rows) else set(got)
        for row in rows:
            concealer = ports[row].concealer  # type: ignore[attr-defined]
            if received is None or row in received:
                concealer.heard(frames[row])
            elif (samples := concealer.missing()) is not None:
                frames[row] = samples

    def mix(self, frames: np.ndarray) -> np.ndarray:
        heard = frames[self.sources]
        for bridge, first, ports in self.large:
            rows = slice(first, first + len(ports))
            gains = None
            if bridge.muted:
                gains = np.array([id(p) not in bridge.muted for p in ports], np.int32)
            heard[rows] = mix_minus(frames[rows], gains)
            for row, port in enumerate(ports, first):
                if id(port) in bridge.deaf:
                    heard[row] = 0
        return heard

    def play(self) -> dict[Bridge, list[tuple[Overlay, np.ndarray]]]:
        """This tick's frame of every overlay that has one (each source is called once)."""
        played: dict[Bridge, list[tuple[Overlay, np.ndarray]]] = {}
        for bridge, _, _ in self.spans:
            if not bridge.overlays or bridge in self.failed:
                continue
            for overlay in list(bridge.overlays):
                try:
                    samples = overlay.source()
                except Exception:  # the calls keep their audio; only the overlay goes
                    log.exception("an overlay of a bridge failed; removing it")
                    bridge.overlays.remove(overlay)
                    continue
                if samples is not None and len(samples) == self.size:
                    played.setdefault(bridge, []).append((overlay, samples))
        return played

    def overlay(
        self, heard: np.ndarray, played: dict[Bridge, list[tuple[Overlay, np.ndarray]]]
    ) -> None:
        """Add each overlay's frame to its hearers' rows (deaf ports hear none), saturating:
        one gather, add and scatter for all of them."""
        rows: list[int] = []
        frames: list[np.ndarray] = []
        for bridge, first, ports in self.spans:
            entries = played.get(bridge)
            if not entries or bridge in self.failed:
                continue
            deaf = bridge.deaf
            for overlay, samples in entries:
                hearers = overlay.hearers
                for row, port in enumerate(ports, first):
                    if (hearers is None or id(port) in hearers) and id(port) not in deaf:
                        rows.append(row)
                        frames.append(samples)
        if not rows:
            return
        index = np.array(rows, np.intp)
        added = np.array(frames, np.int32)
        if len(set(rows)) == len(rows):  # the usual case: one overlay per hearer
            total = heard[index].astype(np.int32)
            total += added
        else:
            index, inverse = np.unique(index, return_inverse=True)
            total = heard[index].astype(np.int32)
            np.add.at(total, inverse, added)
        np.minimum(total, 32767, out=total)  # in place: np.clip costs several times more
        np.maximum(total, -32768, out=total)
        heard[index] = total

    def write(self, heard: np.ndarray) -> None:
        encoded: list[bytes | None] = [None] * len(self.ports)
        for codec, rows in self.coded.items():
            for row, payload in zip(rows, codec.encode_batch(heard[rows]), strict=True):
                encoded[row] = payload
        for bridge, first, ports in self.spans:
            if bridge in self.failed:
                continue
            try:
                for row, port in enumerate(ports, first):
                    payload = encoded[row]
                    if payload is None:
                        port.write(heard[row])
                    else:
                        port.push(payload)  # type: ignore[attr-defined]
            except Exception as exc:
                self.fail(bridge, exc)


class MediaPlane:
    """The bridges and their clock. Each tick first reads the sockets of the bridged ports
    that have one (``PolledPort``: RTP legs) in one go, then ticks every bridge: the packets
    that reached the kernel before the tick play in it, whatever the event loop was doing."""

    def __init__(self) -> None:
        self.bridges: set[Bridge] = set()
        self.sockets = SocketSet()  # the polled ports' sockets, read at each tick's start
        self._polled: dict[int, MediaPort] = {}  # by id(port): every bridged port
        self.caught_up_ticks = 0  # ticks run more than a tick after they fell due
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
        self._poll_bridged()  # at once: a dissolved pair may relay next, packet by packet

    def _poll_bridged(self) -> None:
        """Read on the tick the sockets of exactly the ports in a bridge now (a port may have
        joined or left one since the last tick, through ``Bridge.add`` or ``remove``)."""
        bridged = {id(port): port for bridge in self.bridges for port in bridge.ports}
        polled = self._polled
        if bridged.keys() == polled.keys():
            return
        for key in polled.keys() - bridged.keys():
            self._read_on(polled.pop(key), None)
        for key in bridged.keys() - polled.keys():
            port = polled[key] = bridged[key]
            self._read_on(port, self.sockets)

    @staticmethod
    def _read_on(port: MediaPort, sockets: SocketSet | None) -> None:
        read_on = getattr(port, "read_on", None)  # a PolledPort
        if read_on is None:
            return
        try:
            read_on(sockets)
        except Exception:  # the port keeps its reader; the clock must go on for the others
            log.exception("moving a port's socket to or from the plane's tick failed")

    def _ensure_running(self) -> None:
        if self._handle is None:
            if self.sockets.closed:  # closed, then used again
                self.sockets = SocketSet()
            loop = asyncio.get_running_loop()
            self._next = loop.time() + TICK
            self._handle = loop.call_at(self._next, self._tick)

    def _failed(self, bridge: Bridge, exc: Exception) -> None:
        log.error("a bridge failed its tick; dissolving it", exc_info=exc)
        self.bridges.discard(bridge)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() > self._next + TICK:
            self.caught_up_ticks += 1
        self._poll_bridged()
        self.sockets.read()
        tick_bridges(list(self.bridges), self._failed)
        self.ticks += 1
        if not self.bridges:
            self._poll_bridged()  # no tick reads them any more: back to the event loop
            self._handle = None
            return
        self._next += TICK
        now = loop.time()
        if now > self._next + CATCH_UP * TICK:  # stalled: what it missed is past saving
            self.late_ticks += 1
            self._next = now + TICK
        self._handle = loop.call_at(self._next, self._tick)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.bridges.clear()
        self._poll_bridged()
        self.sockets.close()
