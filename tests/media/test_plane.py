"""The batched tick: many bridges, payload and plain ports, mute, deaf, taps and failures."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from gateway.media.codecs import PCMA, PCMU, Codec
from gateway.media.jitterbuffer import Concealer
from gateway.media.plane import CATCH_UP, TICK, Bridge, MediaPlane, tick_bridges


def tone(level: int, phase: int = 0) -> np.ndarray:
    return (level * np.sin(np.arange(phase, phase + 160) / 5)).astype(np.int16)


class PlainPort:
    """A port read and written frame by frame (a simulated phone)."""

    sample_rate = 8000

    def __init__(self, frame: np.ndarray | None) -> None:
        self.frame = frame
        self.heard: list[np.ndarray] = []

    def read(self) -> np.ndarray | None:
        return self.frame

    def write(self, samples: np.ndarray) -> None:
        self.heard.append(samples.copy())


class G711Port(PlainPort):
    """A port that hands the plane payloads (an RTP leg)."""

    def __init__(self, frame: np.ndarray | None, codec: Codec = PCMU) -> None:
        super().__init__(frame)
        self.batch_codec = codec
        self.concealer = Concealer()
        self.sent: list[bytes] = []

    def pull(self) -> bytes | None:
        return None if self.frame is None else self.batch_codec.encode(self.frame)

    def push(self, payload: bytes) -> None:
        self.sent.append(payload)
        self.heard.append(self.batch_codec.decode(payload))


def coded(frame: np.ndarray, codec: Codec = PCMU) -> np.ndarray:
    return codec.decode(codec.encode(frame))


def fail(bridge: Bridge, exc: Exception) -> None:
    raise exc


def test_two_party_bridges_of_every_kind_hear_each_other() -> None:
    a, b = G711Port(tone(8000)), PlainPort(tone(3000, 7))
    c, d = G711Port(tone(5000, 3), PCMA), G711Port(tone(2000, 9))
    e, f = PlainPort(tone(1000)), PlainPort(None)
    tick_bridges([Bridge([a, b]), Bridge([c, d]), Bridge([e, f])], fail)
    assert a.sent == [PCMU.encode(b.frame)]  # bit-exact: one lookup over the batch
    assert np.array_equal(b.heard[0], coded(a.frame))
    assert np.array_equal(c.heard[0], coded(coded(d.frame), PCMA))
    assert np.array_equal(d.heard[0], coded(coded(c.frame, PCMA)))
    assert not e.heard[0].any()  # f had nothing to send: silence
    assert np.array_equal(f.heard[0], e.frame)


def test_mute_and_deaf_in_two_party_and_larger_bridges() -> None:
    a, b = PlainPort(tone(8000)), PlainPort(tone(4000))
    pair = Bridge([a, b], muted={id(a)})
    x, y, z = G711Port(tone(1000)), PlainPort(tone(2000)), PlainPort(tone(3000))
    room = Bridge([x, y, z], muted={id(y)}, deaf={id(z)})
    tick_bridges([pair, room], fail)
    assert not b.heard[0].any()  # a is muted
    assert np.array_equal(a.heard[0], b.frame)
    assert np.array_equal(x.heard[0], coded(z.frame))  # y is muted
    assert np.array_equal(y.heard[0], coded(x.frame) + z.frame)
    assert not z.heard[0].any()  # z is deaf


def test_taps_see_their_bridge_rows_in_port_order() -> None:
    a, b, c = PlainPort(tone(100)), PlainPort(tone(200)), PlainPort(tone(300))
    seen: list[np.ndarray] = []
    first, second = Bridge([a]), Bridge([b, c], taps=[lambda frames: seen.append(frames.copy())])
    tick_bridges([first, second], fail)
    assert len(seen) == 1 and seen[0].shape == (2, 160)
    assert np.array_equal(seen[0], np.stack([b.frame, c.frame]))


def test_a_failing_tap_is_removed_and_its_bridge_carries_on() -> None:
    a, b = PlainPort(tone(100)), PlainPort(tone(200))
    seen: list[int] = []

    def broken(frames: np.ndarray) -> None:
        raise RuntimeError("disk full")

    def good(frames: np.ndarray) -> None:
        seen.append(len(frames))

    bridge = Bridge([a, b], taps=[broken, good])
    failed: list[Bridge] = []
    tick_bridges([bridge], lambda bridge, exc: failed.append(bridge))
    tick_bridges([bridge], lambda bridge, exc: failed.append(bridge))
    assert failed == [] and bridge.taps == [good] and seen == [2, 2]
    assert np.array_equal(b.heard[-1], a.frame)  # the calls still hear each other


def test_a_missing_payload_is_concealed_from_the_last_frame() -> None:
    port, other = G711Port(tone(8000)), PlainPort(None)
    bridge = Bridge([port, other])
    bridge.tick()
    port.frame = None
    bridge.tick()
    assert np.array_equal(other.heard[1], coded(tone(8000)) >> 1)


def test_a_failing_bridge_does_not_stop_the_others() -> None:
    class Broken(PlainPort):
        def read(self) -> np.ndarray | None:
            raise RuntimeError("gone")

    broken, peer = Broken(None), G711Port(tone(1000))
    a, b = G711Port(tone(5000)), PlainPort(tone(6000))
    failed: list[Bridge] = []
    bad = Bridge([broken, peer])
    tick_bridges([bad, Bridge([a, b])], lambda bridge, exc: failed.append(bridge))
    assert failed == [bad]
    assert not peer.sent and not broken.heard  # nothing written to the failed bridge
    assert np.array_equal(b.heard[0], coded(a.frame))
    with pytest.raises(RuntimeError):
        bad.tick()  # alone, a bridge's tick raises what its port raised


def test_payload_ports_of_another_rate_are_read_as_frames() -> None:
    narrow, wide = G711Port(tone(4000)), PlainPort(np.zeros(320, dtype=np.int16))
    tick_bridges([Bridge([narrow, wide], sample_rate=16000)], fail)
    assert not narrow.sent  # an 8 kHz codec in a 16 kHz bridge: read()/write(), not payloads
    assert len(narrow.heard[0]) == 320 and not wide.heard[0].any()


def test_an_overlay_is_heard_by_its_hearers_over_their_audio_and_not_by_the_deaf() -> None:
    from gateway.media.plane import Overlay

    a, b, c = PlainPort(tone(1000)), PlainPort(tone(1000, 3)), PlainPort(None)
    bridge = Bridge([a, b, c])
    loud = np.full(160, 30000, np.int16)
    bridge.overlays.append(Overlay(lambda: loud, frozenset({id(a), id(c)})))
    bridge.deaf.add(id(c))
    bridge.tick()
    expected = np.clip(tone(1000, 3).astype(np.int32) + 30000, -32768, 32767)
    assert (a.heard[-1] == expected).all()  # saturated, not wrapped
    assert (b.heard[-1] == tone(1000)).all()  # not a hearer
    assert not c.heard[-1].any()  # deaf hears nothing, the overlay neither


def test_an_overlay_that_raises_is_removed_alone() -> None:
    from gateway.media.plane import Overlay

    a, b = PlainPort(tone(1000)), PlainPort(tone(2000, 3))

    def broken() -> np.ndarray:
        raise RuntimeError("bad file")

    bridge = Bridge([a, b], overlays=[Overlay(broken)])
    bridge.tick()
    assert not bridge.overlays
    assert (a.heard[-1] == tone(2000, 3)).all()


def test_two_overlays_heard_by_one_port_add_up() -> None:
    from gateway.media.plane import Overlay

    a, b = PlainPort(None), PlainPort(None)
    first, second = np.full(160, 1000, np.int16), np.full(160, 250, np.int16)
    bridge = Bridge([a, b], overlays=[Overlay(lambda: first), Overlay(lambda: second)])
    bridge.tick()
    assert (a.heard[-1] == 1250).all() and (b.heard[-1] == 1250).all()


async def ticks_behind_after_a_stall(stall: float) -> tuple[float, MediaPlane]:
    """How many ticks short of the time gone by a plane is, a few ticks after the event loop
    stalled ``stall`` seconds."""
    plane = MediaPlane()
    plane.bridge(PlainPort(tone(1000)))
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(2):
            while plane.ticks < 2:
                await asyncio.sleep(0.001)
            start, ticks = loop.time(), plane.ticks
            time.sleep(stall)  # the whole process stalls (a blocking call, the machine busy)
            while loop.time() < start + stall + 4 * TICK:
                await asyncio.sleep(0.002)
        return (loop.time() - start) / TICK - (plane.ticks - ticks), plane
    finally:
        plane.close()


async def test_a_plane_that_fell_a_few_ticks_behind_catches_up() -> None:
    # Skipping them would leave every jitter buffer a frame deeper: 20 ms more on every call.
    behind, plane = await ticks_behind_after_a_stall(3.5 * TICK)
    assert behind < 1.5
    assert plane.caught_up_ticks >= 2 and plane.late_ticks == 0


async def test_a_plane_stalled_for_long_skips_to_now_instead_of_bursting() -> None:
    behind, plane = await ticks_behind_after_a_stall(20 * TICK)
    assert plane.late_ticks == 1
    assert behind > 20 - CATCH_UP - 3  # not the twenty ticks it missed
