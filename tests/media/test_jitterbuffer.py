"""The adaptive jitter buffer, driven in simulated time, and packet loss concealment."""

from __future__ import annotations

import random

import numpy as np

from gateway.media.jitterbuffer import Concealer, JitterBuffer


def payload(seq: int) -> bytes:
    return seq.to_bytes(4, "big")


def simulate(
    buffer: JitterBuffer,
    delays_ms: dict[int, float] | list[float],
    first_seq: int = 0,
    ticks: int | None = None,
    trace: list[tuple[int, int]] | None = None,
) -> list[int | None]:
    """Packet i leaves at i x 20 ms and arrives ``delays_ms[i]`` later (missing: lost); a tick
    every 20 ms, 10 ms out of phase, puts what has arrived and gets one payload. ``trace``
    collects (target_ms, depth) before each get."""
    delays = dict(enumerate(delays_ms)) if isinstance(delays_ms, list) else delays_ms
    arrivals = sorted((i * 20 + d, i) for i, d in delays.items())
    played: list[int | None] = []
    ticks = ticks if ticks is not None else max(delays) + 15
    for tick in range(ticks):
        now = tick * 20 + 10
        while arrivals and arrivals[0][0] <= now:
            _, i = arrivals.pop(0)
            seq = first_seq + i
            buffer.put(seq, seq * 160, payload(seq))
        if trace is not None:
            trace.append((buffer.target_ms, buffer.depth))
        got = buffer.get()
        played.append(None if got is None else int.from_bytes(got, "big"))
    return played


def test_in_order_from_the_first_tick() -> None:
    buffer = JitterBuffer()
    assert buffer.target_ms == 20  # one frame: a packet plays at the first tick after it
    played = simulate(buffer, [0.0] * 10)
    assert played[:10] == list(range(10))
    assert (buffer.lost, buffer.late, buffer.duplicates) == (0, 0, 0)


def test_reordered_within_the_window_plays_in_order() -> None:
    buffer = JitterBuffer()
    delays = [0.0] * 10
    delays[3] = 25.0  # arrives after packet 4
    played = simulate(buffer, delays)
    assert [p for p in played if p is not None] == list(range(10))
    assert (buffer.lost, buffer.late) == (0, 0)


def test_duplicates_are_dropped_before_and_after_playout() -> None:
    buffer = JitterBuffer()
    assert buffer.put(1, 160, b"a")
    assert not buffer.put(1, 160, b"a")
    assert buffer.put(2, 320, b"b")
    assert buffer.get() == b"a"
    assert not buffer.put(1, 160, b"a")  # already played: a duplicate, not late
    assert buffer.duplicates == 2
    assert buffer.late == 0


def test_a_packet_too_late_is_lost_then_dropped() -> None:
    buffer = JitterBuffer()
    delays = [0.0] * 10
    delays[4] = 100.0
    played = simulate(buffer, delays)
    assert 4 not in played
    assert [p for p in played if p is not None] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert (buffer.lost, buffer.late) == (1, 1)


def test_loss_gives_none_in_its_slot() -> None:
    buffer = JitterBuffer()
    delays = {i: 0.0 for i in range(10) if i != 5}
    played = simulate(buffer, delays)
    # The tick for 5 stalls (nothing behind it yet); once 6 is there, 5 is lost and 6 plays
    # at once in its own slot, so the loss costs one frame and no added delay.
    assert played[:10] == [0, 1, 2, 3, 4, None, 6, 7, 8, 9]
    assert buffer.lost == 1


def test_only_slips_past_a_tick_count_as_jitter() -> None:
    calm = JitterBuffer()
    rng = random.Random(3)
    # Up to 9 ms late, ticks 10 ms after each send: every packet still makes its tick.
    played = simulate(calm, [rng.uniform(0, 9.9) for _ in range(200)])
    assert calm.jitter_ms == 0 and calm.target_ms == 20
    assert played[:200] == list(range(200))
    slipping = JitterBuffer()
    simulate(slipping, [15.0 if i % 10 == 0 else 0.0 for i in range(200)])
    assert slipping.target_ms >= 40  # every tenth packet misses its tick: the delay grows
    assert slipping.lost == slipping.late == 0


def test_sequence_numbers_need_not_start_at_zero() -> None:
    played = simulate(JitterBuffer(), [0.0] * 5, first_seq=70000)
    assert played[:5] == list(range(70000, 70005))


def test_target_grows_with_jitter_and_shrinks_back() -> None:
    rng = random.Random(7)
    buffer = JitterBuffer()
    delays = [rng.uniform(0, 120) for _ in range(300)] + [0.0] * 1000
    trace: list[tuple[int, int]] = []
    played = simulate(buffer, delays, trace=trace)
    # Playout delay of each played packet: tick time minus its send time.
    latency = {seq: tick * 20 + 10 - seq * 20 for tick, seq in enumerate(played) if seq}
    assert min(target for target, _ in trace[50:300]) >= 120
    assert min(latency[seq] for seq in range(50, 300)) >= 100  # the delay built up...
    # ...so up to 120 ms of jitter lost nothing once measured (a cold start at one frame can
    # lose a few of the first packets, before their slips have raised the target).
    assert set(range(20, 300)) <= set(played)
    assert max(target for target, _ in trace[-100:-20]) <= 40
    assert max(latency[seq] for seq in range(1200, 1300)) <= 30
    assert buffer.skipped > 0


def test_reset_starts_a_new_stream() -> None:
    buffer = JitterBuffer()
    simulate(buffer, [0.0] * 5)
    buffer.reset()  # a new SSRC: its numbering has nothing to do with the old one
    assert buffer.get() is None
    assert buffer.put(40000, 0, b"new")
    assert buffer.put(40001, 160, b"new2")
    assert buffer.get() == b"new"
    assert buffer.get() == b"new2"


def test_a_long_gap_resyncs() -> None:
    buffer = JitterBuffer()
    simulate(buffer, [0.0] * 5)
    buffer.put(5000, 5000 * 160, b"far")
    assert buffer.resyncs == 1
    assert buffer.depth == 1
    assert buffer.get() == b"far"  # the new position plays at the one-frame target
    buffer.put(5001, 5001 * 160, b"next")
    assert buffer.get() == b"next"


def test_memory_is_bounded() -> None:
    buffer = JitterBuffer()
    for seq in range(10_000):  # nobody reads
        buffer.put(seq, seq * 160, b"x" * 160)
    assert len(buffer) <= 20


def frame(value: int) -> np.ndarray:
    return np.full(160, value, dtype=np.int16)


def test_concealment_repeats_fading_then_silence() -> None:
    concealer = Concealer()
    assert concealer.missing() is None  # nothing heard yet: silence
    concealer.heard(frame(8000))
    levels = [concealer.missing() for _ in range(5)]
    assert [int(level[0]) if level is not None else 0 for level in levels] == [
        4000,
        2000,
        1000,
        0,
        0,
    ]
    assert levels[3] is None  # past max_repeats: silence
    concealer.heard(frame(-100))  # audio again: no fade left
    assert concealer.missing()[0] == -50
