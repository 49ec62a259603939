"""A per-leg adaptive jitter buffer of 20 ms payloads, and the concealment of what it lacks.

``put`` runs per packet and only stores bytes in a dict; ``get`` runs once per 20 ms tick.
One packet is one frame, so delays are counted in frames. The buffer plays once it holds
the target delay; the target follows measured jitter (fast up, slow down). A hole is waited
for while fewer than the target frames sit behind it, then declared lost (``get`` gives
None). Excess delay that a whole window of ticks never used is dropped at once.

Arrival is measured on the playout clock (the count of ``get`` calls: ticks), not the wall
clock: what the buffer must absorb is a packet slipping past the tick that should play it.
Time the gateway itself takes to handle a packet that still makes its tick (a busy event
loop, a long tick) is no jitter, and wall-clock arrival would count it and hold a loaded
gateway at two or three frames of delay for nothing. So playout starts at one frame (20 ms
plus the wait for the tick), and grows when packets actually slip: an underrun stalls a
frame (concealed), and if the frame it waited for turns out lost, the next one plays at
once, so a lost packet costs one frame, not two.
"""

from __future__ import annotations

import math

import numpy as np

from gateway.media.frame import FRAME_MS, NARROWBAND
from gateway.media.rtp import MAX_MISORDER

INITIAL_JITTER_MS = 0.0  # a one-frame (20 ms) target until packets slip
JITTER_RISE = 1 / 8  # a spike raises the estimate within a few packets...
JITTER_DECAY = 1 / 32  # ...calm lowers it within a second or two
DISCONTINUITY_MS = 1000.0  # a transit change this large is a pause or a new clock, not jitter
SHRINK_WINDOW = 50  # ticks (1 s) over which the smallest depth must exceed the target
RESTART_AFTER_EMPTY = 5  # empty ticks after which playout waits for the target again
_HISTORY_MASK = (1 << 64) - 1


class JitterBuffer:
    """Payloads keyed by extended sequence number, played out one per ``get``."""

    def __init__(
        self,
        clock_rate: int = NARROWBAND,
        *,
        min_ms: int = 20,
        max_ms: int = 200,
    ) -> None:
        self._ms_per_unit = 1000 / clock_rate
        self._min = max(1, min_ms // FRAME_MS)
        self._max = max(self._min, max_ms // FRAME_MS)
        self._capacity = 2 * self._max  # frames ahead of playout kept; beyond that, resync
        self.late = 0
        self.duplicates = 0
        self.lost = 0
        self.skipped = 0
        self.underruns = 0
        self.resyncs = 0
        self._clock = 0  # gets so far: the playout clock arrivals are measured on
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a new SSRC, or a resync): the next packet starts a new one."""
        self._frames: dict[int, bytes] = {}
        self._next: int | None = None
        self._highest = 0
        self._playing = False
        self._history = 0  # bit i: whether frame (next - 1 - i) was received
        self._jitter_ms = INITIAL_JITTER_MS
        self._last_arrival: int | None = None  # on the playout clock
        self._stalled = False  # the last get had nothing to play: it filled the slot
        self._last_timestamp = 0
        self._empty_ticks = 0
        self._window = 0
        self._min_depth = 0

    @property
    def jitter_ms(self) -> float:
        return self._jitter_ms

    @property
    def target_frames(self) -> int:
        # FRAME_MS + 3 x jitter, rounded up to whole frames but ignoring the first 2 ms.
        frames = math.ceil((FRAME_MS + 3 * self._jitter_ms - 2) / FRAME_MS)
        return min(self._max, max(self._min, frames))

    @property
    def target_ms(self) -> int:
        return self.target_frames * FRAME_MS

    @property
    def depth(self) -> int:
        """Frames from the next to play up to the newest received, holes included."""
        return 0 if self._next is None else self._highest + 1 - self._next

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, seq: int, timestamp: int, payload: bytes) -> bool:
        """Store a payload; False when it is a duplicate or too late to play (and counted)."""
        nxt = self._next
        if nxt is None or not nxt <= seq < nxt + self._capacity:
            if not self._outside_window(seq, timestamp):
                return False
        elif seq in self._frames:
            self.duplicates += 1
            return False
        self._frames[seq] = payload
        if seq > self._highest:
            self._highest = seq
        if self._playing:
            self._measure(timestamp)
        return True

    def _outside_window(self, seq: int, timestamp: int) -> bool:
        """A packet before the next to play or far ahead of it: whether to store it."""
        nxt = self._next
        if nxt is None or seq >= nxt:  # the first packet, or one so far ahead it is a gap
            if nxt is not None:
                self.resyncs += 1
                self.reset()
            self._next = self._highest = seq
            return True
        age = nxt - 1 - seq
        if age < 64 and self._history >> age & 1:
            self.duplicates += 1
            return False
        if age >= MAX_MISORDER:  # far behind: the sender restarted its numbering
            self.resyncs += 1
            self.reset()
            self._next = self._highest = seq
            return True
        if not self._playing and nxt - seq < self._capacity:
            self._next = seq  # reordered before playout began: start earlier
            return True
        self.late += 1
        self._measure(timestamp)  # lateness is the jitter the target must cover
        return False

    def _measure(self, timestamp: int) -> None:
        """RFC 3550 A.8's transit difference on the playout clock (whole ticks: 0 while
        every packet makes its tick), smoothed with a fast rise and a slow decay."""
        arrival = self._clock
        last = self._last_arrival
        self._last_arrival = arrival
        if last is not None:
            # The timestamp difference modulo 2^32, as in rtp.ts_diff (inlined: per packet).
            units = ((timestamp - self._last_timestamp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            d = (arrival - last) * FRAME_MS - units * self._ms_per_unit
            if d < 0:
                d = -d
            if d < DISCONTINUITY_MS:
                jitter = self._jitter_ms
                if d > jitter:
                    self._jitter_ms = jitter + (d - jitter) * JITTER_RISE
                else:
                    self._jitter_ms = jitter + (d - jitter) * JITTER_DECAY
        self._last_timestamp = timestamp

    def get(self) -> bytes | None:
        """The next payload in order, or None (nothing yet, a stall, or a lost packet)."""
        self._clock += 1
        nxt = self._next
        if nxt is None:
            return None
        depth = self._highest + 1 - nxt
        if not self._playing:
            if depth < self.target_frames:
                return None
            self._playing = True
            self._window = 0
            self._min_depth = depth
        if depth < self._min_depth:
            self._min_depth = depth
        self._window += 1
        if self._window >= SHRINK_WINDOW:
            # Delay the whole window never used goes at once: one gap, not one per second.
            for _ in range(min(self._min_depth - self.target_frames, depth - 1)):
                self._advance(nxt, self._frames.pop(nxt, None) is not None)
                self.skipped += 1
                nxt += 1
                depth -= 1
            self._window = 0
            self._min_depth = depth
        payload = self._frames.pop(nxt, None)
        if payload is not None:  # the common case, inlined
            self._empty_ticks = 0
            self._stalled = False
            self._next = nxt + 1
            self._history = (self._history << 1 | 1) & _HISTORY_MASK
            return payload
        if depth <= 0:  # nothing arrived yet: stall rather than lose what is on its way
            self.underruns += 1
            self._stalled = True
            self._empty_ticks += 1
            if self._empty_ticks >= RESTART_AFTER_EMPTY:
                self._playing = False
            return None
        if depth < self.target_frames:  # a hole with little behind it: it may still arrive
            return None
        self.lost += 1
        self._advance(nxt, False)
        if not self._stalled:
            return None
        # A stall already filled this frame's slot with concealment: the next frame is due.
        payload = self._frames.pop(nxt + 1, None)
        if payload is not None:
            self._empty_ticks = 0
            self._stalled = False
            self._advance(nxt + 1, True)
        return payload

    def _advance(self, nxt: int, received: bool) -> None:
        self._next = nxt + 1
        self._history = (self._history << 1 | received) & _HISTORY_MASK


class Concealer:
    """Packet loss concealment for one leg: a missing frame repeats the last one, 6 dB
    quieter each time, for up to ``max_repeats`` frames; then silence.

    ``heard`` takes each frame that arrived and ``missing`` gives what to play for one that
    did not, so that a tick can decode many legs at once and conceal only the gaps."""

    def __init__(self, sample_rate: int = NARROWBAND, max_repeats: int = 3) -> None:
        self.sample_rate = sample_rate
        self.max_repeats = max_repeats
        self._last: np.ndarray | None = None
        self._misses = 0

    def heard(self, samples: np.ndarray) -> None:
        """A frame arrived (int16; kept, not copied: the caller must not change it)."""
        self._last = samples
        self._misses = 0

    def missing(self) -> np.ndarray | None:
        """What to play for a frame that did not arrive; None for silence."""
        self._misses += 1
        if self._last is None or self._misses > self.max_repeats:
            return None
        # An arithmetic right shift by n halves the amplitude n times: -6.02 dB each.
        return self._last >> self._misses
