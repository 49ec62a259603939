"""Streaming int16 resampling between 8, 16, 24 and 48 kHz, one leg or a batch of legs per call.

A polyphase FIR (Kaiser-windowed sinc, flat to 85 % of the lower Nyquist, >= 80 dB down from
the lower Nyquist on) so tones survive intact and nothing above the target band aliases in:
tone detection downstream runs an FFT over the result. Each leg keeps the last input samples
the filter still reaches, so 20 ms frames join without clicks: frame by frame gives exactly
what filtering the whole signal at once gives.

Per frame the filter is one matrix (history + frame in, output frame out), so a batch of legs is
one matrix product. The filter is linear-phase and causal: output lags input by ``delay``
seconds: 4.25 ms when either side is 8 kHz, 2.1 ms for 16 <-> 24/48 kHz, 1.4 ms for
24 <-> 48 kHz (``Resampler.delay``).
"""

from __future__ import annotations

from functools import cache, lru_cache
from math import ceil, gcd, pi

import numpy as np

from gateway.media.frame import samples_per_frame

RATES = (8000, 16000, 24000, 48000)
_PASSBAND = 0.85  # of the lower Nyquist: 3.4 kHz at 8 kHz, the edge of the telephone band
_STOPBAND_DB = 80.0


@cache
def _design(from_rate: int, to_rate: int) -> tuple[int, int, np.ndarray]:
    """(up, down, taps) for the pair; taps run at ``from_rate * up`` with DC gain ``up``."""
    g = gcd(from_rate, to_rate)
    up, down = to_rate // g, from_rate // g
    fast = from_rate * up
    nyquist = min(from_rate, to_rate) / 2
    width = 2 * pi * nyquist * (1 - _PASSBAND) / fast  # transition width, rad/sample
    n = ceil((_STOPBAND_DB - 8) / (2.285 * width))
    # Half-length a multiple of up*down: the delay is then whole samples at both rates.
    half = ceil((n - 1) / 2 / (up * down)) * up * down
    t = np.arange(2 * half + 1) - half
    cutoff = nyquist * (1 + _PASSBAND) / 2 / fast  # cycles/sample, mid-transition
    beta = 0.1102 * (_STOPBAND_DB - 8.7)
    taps = 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(len(t), beta)
    return up, down, taps * (up / taps.sum())


@lru_cache(maxsize=64)
def _matrix(from_rate: int, to_rate: int, n: int) -> np.ndarray:
    """The linear map from (history + n inputs) to the n * up / down outputs they complete."""
    up, down, taps = _design(from_rate, to_rate)
    history = _history(from_rate, to_rate)
    i = np.arange(history + n)[:, None] - history  # input index relative to the chunk
    j = np.arange(n * up // down)[None, :]
    k = j * down - i * up  # tap linking input i to output j
    valid = (k >= 0) & (k < len(taps))
    matrix = np.where(valid, taps[np.clip(k, 0, len(taps) - 1)], 0.0).astype(np.float32)
    matrix.setflags(write=False)
    return matrix


def _history(from_rate: int, to_rate: int) -> int:
    up, _, taps = _design(from_rate, to_rate)
    return ceil((len(taps) - 1) / up)


def _check(from_rate: int, to_rate: int) -> None:
    if from_rate not in RATES or to_rate not in RATES:
        raise ValueError(f"resampling is between {RATES} Hz, not {from_rate} -> {to_rate}")


class BatchResampler:
    """Resamples rows of a 2-D int16 array, one leg per row, each with its own filter history.

    Rows are slots: ``reset(row)`` when a new leg takes one. ``process`` may cover a subset of
    rows (``rows``), so idle slots cost nothing and keep their state.
    """

    def __init__(self, from_rate: int, to_rate: int, rows: int) -> None:
        _check(from_rate, to_rate)
        self.from_rate, self.to_rate = from_rate, to_rate
        self._identity = from_rate == to_rate
        size = 0 if self._identity else _history(from_rate, to_rate)
        self._state = np.zeros((rows, size), dtype=np.float32)
        self._block = 1 if self._identity else _design(from_rate, to_rate)[1]

    @property
    def delay(self) -> float:
        """Seconds by which output lags input (the filter's group delay)."""
        if self._identity:
            return 0.0
        up, _, taps = _design(self.from_rate, self.to_rate)
        return (len(taps) - 1) / 2 / (self.from_rate * up)

    def reset(self, row: int | None = None) -> None:
        """Forget history (of one row, or all): the next input starts from silence."""
        self._state[slice(None) if row is None else row] = 0.0

    def process(self, frames: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """int16 (legs x n) -> int16 (legs x n * to_rate / from_rate).

        ``n`` may be any multiple of from_rate / gcd(from_rate, to_rate) (a 20 ms frame is);
        long inputs go through in 20 ms chunks so the per-chunk matrix stays small.
        """
        frames = np.asarray(frames, dtype=np.int16)
        if self._identity:
            return frames.copy()
        n = frames.shape[1]
        if n % self._block:
            raise ValueError(f"input length {n} is not a multiple of {self._block} samples")
        index = slice(None) if rows is None else rows
        state = self._state[index]
        chunk = samples_per_frame(self.from_rate)
        out = []
        for start in range(0, n, chunk):
            part = frames[:, start : start + chunk]
            buffer = np.concatenate([state, part.astype(np.float32)], axis=1)
            out.append(buffer @ _matrix(self.from_rate, self.to_rate, part.shape[1]))
            state = buffer[:, buffer.shape[1] - state.shape[1] :]
        self._state[index] = state
        result = np.concatenate(out, axis=1) if out else np.zeros((len(frames), 0), np.float32)
        return np.clip(np.rint(result), -32768, 32767).astype(np.int16)


class Resampler:
    """One leg's resampler: 1-D int16 in, 1-D int16 out, history kept between calls."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self._batch = BatchResampler(from_rate, to_rate, 1)
        self.from_rate, self.to_rate = from_rate, to_rate

    @property
    def delay(self) -> float:
        """Seconds by which output lags input."""
        return self._batch.delay

    def reset(self) -> None:
        self._batch.reset()

    def process(self, samples: np.ndarray) -> np.ndarray:
        return self._batch.process(np.asarray(samples, dtype=np.int16).reshape(1, -1))[0]
