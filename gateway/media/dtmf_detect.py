"""In-band DTMF detection: digits a caller keys as audio, found in the frames of many legs at once.

Each tick's 20 ms frames (one int16 row per leg, 8 kHz) are analysed in Hann-windowed blocks of
``BLOCK`` samples (30 ms) every ``HOP`` samples (10 ms), so a block always spans the previous
frame's tail. Per block the single-bin DFT (Goertzel's quantity) is taken at 32 frequencies: the
8 DTMF tones, a bin ``SIDE_OFFSET`` (±5 %) either side of each, and each tone's second harmonic.
Goertzel's recursion is a per-sample loop; the same numbers come from one matrix product of all
blocks of all legs with a fixed basis, which is what numpy does fast.

A block holds a digit when (ITU-T Q.24 / Q.23 style, limits below):

- the strongest row and column tone are each at least ``MIN_LEVEL_DBFS``;
- each reads more at its nominal frequency than at the bins ±5 % away. The Hann main lobe of a
  30 ms block is ±67 Hz wide, wider than 5 % of 1633 Hz, so within it the response falls
  monotonically with distance and the nominal bin wins exactly when the tone is nearer to it
  than to a side bin: deviations below ±2.5 % pass, above fail, midway between Q.24's "accept
  ±1.5 %" and "reject ±3.5 %", with the same margin at every DTMF frequency. (An off-frequency
  tone also reads less in its nominal bin, so the share test below already drops the high
  columns from about ±2 %; ±1.8 % still passes for every digit.);
- the column is at most ``NORMAL_TWIST_DB`` above the row, the row at most
  ``REVERSE_TWIST_DB`` above the column;
- both exceed every other DTMF frequency and every second harmonic by ``OTHERS_MARGIN_DB``
  (speech is rich in harmonics, a DTMF generator is not); 30 ms gives the resolution for this:
  a 1336 Hz column leaks -22 dB into the 1394 Hz (2 x 697) harmonic bin, not -8 dB as in 20 ms.
  A row harmonic within reach of the detected column's lobe (1394 Hz for 1336 Hz, say, once
  the column is 1.5 % high) cannot be told from that column and is not checked;
- the two tones carry at least ``TONE_SHARE_DB`` of the block's power (speech spreads its power).

A digit starts after ``MIN_BLOCKS`` such blocks in a row (at least 40 ms of tone always gives
them, 23 ms never does) and ends after ``END_BLOCKS`` blocks without it (a pause of 40 ms always
does, a 10 ms interruption never does, per Q.24), so a held digit is one digit. Times are in
samples since the leg's first frame: a start within about 5 ms, a duration up to 10 ms short.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np

from gateway.media.frame import NARROWBAND, samples_per_frame

ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COLUMN_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")  # KEYPAD[row][column]

BLOCK = 240  # 30 ms analysis block
HOP = 80  # 10 ms between blocks
SIDE_OFFSET = 0.05  # side bins at ±5 %: the nominal bin wins below ±2.5 % deviation
MIN_LEVEL_DBFS = -36.0  # per tone; about -33 dBm0 on G.711 (0 dBm0 is -3.14 dBFS)
NORMAL_TWIST_DB = 8.0  # column (high group) louder than row
REVERSE_TWIST_DB = 4.0  # row (low group) louder than column
OTHERS_MARGIN_DB = 10.0  # over other DTMF tones and second harmonics
TONE_SHARE_DB = -3.0  # the two tones hold at least half the block's power
REJECTED_DEVIATION = 0.035  # Q.24: a tone this far off nominal must not count
MIN_BLOCKS = 3  # blocks in a row that start a digit: 40 ms of tone always gives 3, 23 ms never
END_BLOCKS = 4  # blocks without the digit that end it: a 40 ms pause always, 10 ms never
EDGE = HOP  # a block still holds a tone missing from about its first or last hop: times shift

_FRAME = samples_per_frame(NARROWBAND)
_TONES = np.array(ROW_HZ + COLUMN_HZ)
_BINS = np.concatenate([_TONES, _TONES * (1 - SIDE_OFFSET), _TONES * (1 + SIDE_OFFSET), _TONES * 2])
_WINDOW = np.hanning(BLOCK)
_PHASE = 2 * np.pi * np.outer(np.arange(BLOCK), _BINS) / NARROWBAND
# Scaled so a sine of amplitude a (full scale 1) reads a**2 in its bin, as in the total below.
_BASIS = np.hstack([np.cos(_PHASE), np.sin(_PHASE)]) * _WINDOW[:, None] * 2 / _WINDOW.sum() / 32768
_BASIS = _BASIS.astype(np.float32)
_POWER_WINDOW = (_WINDOW / np.sqrt(np.sum(_WINDOW**2)) / 32768).astype(np.float32)
# A row tone's second harmonic within a column tone's main lobe (plus deviation) reads that
# column, not speech: 2 x 697 = 1394 Hz is 58 Hz from 1336 Hz. Those pairs go unchecked.
_LOBE_HZ = 2 * NARROWBAND / BLOCK
_BLIND = (
    np.abs(_TONES[None, :] * 2 - np.array(COLUMN_HZ)[:, None])
    < _LOBE_HZ + REJECTED_DEVIATION * np.array(COLUMN_HZ)[:, None]
)  # [column, harmonic]
_DIGITS = np.array([list(row) for row in KEYPAD]).ravel()  # index row * 4 + column


def _ratio(db: float) -> float:
    return float(10 ** (db / 10))


class DtmfTone(NamedTuple):
    """A digit on a leg: reported at its start (``end`` False) and at its end (``end`` True,
    with ``duration``), like an RFC 4733 event; ``start`` and ``duration`` are in samples."""

    key: Hashable
    digit: str
    start: int
    duration: int = 0
    end: bool = False


def block_digits(blocks: np.ndarray) -> np.ndarray:
    """Index (row * 4 + column) of the digit each block of ``BLOCK`` samples holds, -1 if none."""
    x = blocks.astype(np.float32)
    xy = x @ _BASIS
    power = xy[:, : len(_BINS)] ** 2 + xy[:, len(_BINS) :] ** 2 + 1e-20
    total = 2 * np.sum((x * _POWER_WINDOW) ** 2, axis=1) + 1e-20
    n = len(_TONES)
    nominal, low, high, harmonic = (power[:, i * n : (i + 1) * n] for i in range(4))
    row = np.argmax(nominal[:, :4], axis=1)
    col = np.argmax(nominal[:, 4:], axis=1) + 4
    rows = np.arange(len(x))
    p_row, p_col = nominal[rows, row], nominal[rows, col]
    centred = nominal >= np.maximum(low, high)
    others = nominal.copy()
    others[rows, row] = 0
    others[rows, col] = 0
    harmonic = np.where(_BLIND[col - 4], 0, harmonic)
    strongest_other = np.maximum(others.max(axis=1), harmonic.max(axis=1))
    weaker = np.minimum(p_row, p_col)
    ok = (
        (weaker >= _ratio(MIN_LEVEL_DBFS))
        & centred[rows, row]
        & centred[rows, col]
        & (p_col <= p_row * _ratio(NORMAL_TWIST_DB))
        & (p_row <= p_col * _ratio(REVERSE_TWIST_DB))
        & (weaker >= strongest_other * _ratio(OTHERS_MARGIN_DB))
        & (p_row + p_col >= total * _ratio(TONE_SHARE_DB))
    )
    return np.where(ok, row * 4 + col - 4, -1)


class DtmfDetector:
    """DTMF digits per key (a leg), for rows of 20 ms 8 kHz frames given in ``keys`` order."""

    def __init__(self) -> None:
        self._keys: list[Hashable] = []
        self._tail = np.zeros((0, BLOCK - HOP), np.int16)  # the samples a next block reaches back
        self._samples = np.empty(0, np.int64)  # samples seen per key
        self._candidate = np.empty(0, np.int64)  # digit of the current run of blocks, -1 none
        self._run = np.empty(0, np.int64)  # blocks in a row holding the candidate
        self._run_start = np.empty(0, np.int64)
        self._active = np.empty(0, np.int64)  # digit reported and not yet ended, -1 none
        self._start = np.empty(0, np.int64)
        self._last_end = np.empty(0, np.int64)  # end of the last block holding the active digit
        self._missing = np.empty(0, np.int64)  # blocks in a row without the active digit

    def update(self, keys: Sequence[Hashable], frames: np.ndarray) -> list[DtmfTone]:
        """Feed one tick (``frames``: one 160-sample row per key); returns digits that started
        or ended in it, in time order per key."""
        if list(keys) != self._keys:
            self._realign(list(keys))
        frames = np.asarray(frames, np.int16).reshape(len(self._keys), _FRAME)
        span = np.hstack([self._tail, frames])
        steps = _FRAME // HOP
        blocks = np.lib.stride_tricks.sliding_window_view(span, BLOCK, axis=1)[:, ::HOP]
        digits = block_digits(blocks.reshape(-1, BLOCK)).reshape(len(self._keys), steps)
        events: list[DtmfTone] = []
        if (digits >= 0).any() or (self._active >= 0).any():
            for step in range(steps):
                first = self._samples + step * HOP - (BLOCK - HOP)
                events += self._advance(digits[:, step], first)
        else:  # the usual tick, no tone on any leg: only the runs reset
            self._run[:] = 0
            self._candidate[:] = -1
        self._tail = span[:, -(BLOCK - HOP) :].copy()
        self._samples += _FRAME
        return events

    def _advance(self, digit: np.ndarray, first: np.ndarray) -> list[DtmfTone]:
        """One block per key, whose first sample is ``first``: extend runs, start and end."""
        held = digit >= 0
        same = held & (digit == self._candidate)
        self._run = np.where(same, self._run + 1, held.astype(np.int64))
        self._run_start = np.where(same, self._run_start, first + EDGE)
        self._candidate = digit
        active = self._active >= 0
        present = active & (digit == self._active)
        self._missing = np.where(present, 0, self._missing + 1)
        self._last_end = np.where(present, first + BLOCK - EDGE, self._last_end)
        ends = active & (self._missing >= END_BLOCKS)
        events = [
            DtmfTone(self._keys[r], str(_DIGITS[self._active[r]]), int(self._start[r]),
                     int(self._last_end[r] - self._start[r]), True)
            for r in np.flatnonzero(ends)
        ]  # fmt: skip
        self._active = np.where(ends, -1, self._active)
        starts = (self._active < 0) & (self._run >= MIN_BLOCKS)
        events += [
            DtmfTone(self._keys[r], str(_DIGITS[digit[r]]), int(self._run_start[r]))
            for r in np.flatnonzero(starts)
        ]
        self._active = np.where(starts, digit, self._active)
        self._start = np.where(starts, self._run_start, self._start)
        self._last_end = np.where(starts, first + BLOCK - EDGE, self._last_end)
        self._missing = np.where(starts, 0, self._missing)
        return events

    def forget(self, key: Hashable) -> None:
        """Drop a key (its leg left)."""
        if key in self._keys:
            self._realign([k for k in self._keys if k != key])

    def _realign(self, keys: list[Hashable]) -> None:
        """Membership changed: keep each remaining key's state, start new ones silent."""
        old = {key: row for row, key in enumerate(self._keys)}
        rows = np.array([old.get(key, -1) for key in keys], np.int64)
        kept = rows >= 0

        def carry(values: np.ndarray, fresh: int) -> np.ndarray:
            out = np.full((len(keys), *values.shape[1:]), fresh, values.dtype)
            out[kept] = values[rows[kept]]
            return out

        self._tail = carry(self._tail, 0)
        self._samples = carry(self._samples, 0)
        self._candidate = carry(self._candidate, -1)
        self._run = carry(self._run, 0)
        self._run_start = carry(self._run_start, 0)
        self._active = carry(self._active, -1)
        self._start = carry(self._start, 0)
        self._last_end = carry(self._last_end, 0)
        self._missing = carry(self._missing, 0)
        self._keys = keys
