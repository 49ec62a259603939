"""Whether an utterance ended on a rising pitch, as a question does.

A person's long first words end in a question ("..., who's calling?"), said with a rising
pitch; a machine's sentences end falling. The pitch of a loud frame is the lag of the
strongest autocorrelation peak (50-400 Hz) over it and the frame before (40 ms); a frame
whose peak is under ``VOICED`` of its energy is unvoiced and has none. The rise is the end's
pitch (median of the last ``END_FRAMES`` voiced frames) over the low of the last
``WORD_FRAMES`` (the second lowest: one octave error is no low), in semitones.

The pitch is only wanted at an utterance's end, so loud frames are kept (the last
``KEPT_FRAMES``) and their pitch worked out when the rise is first asked for after them, in
one batched FFT: well under a millisecond once an utterance, rather than an FFT every frame.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

import numpy as np

from gateway.media.frame import NARROWBAND

VOICED = 0.45  # autocorrelation at the pitch lag, over that at lag 0
MIN_LAG, MAX_LAG = NARROWBAND // 400, NARROWBAND // 50
END_FRAMES, WORD_FRAMES, MIN_FRAMES = 3, 12, 6
KEPT_FRAMES = 16  # loud frames, of which ~WORD_FRAMES are voiced
_FFT = 512  # 320 samples and lags up to 160 without wrapping around


class PitchContour:
    """The current utterance's end: ``feed`` every frame, ``restart`` at a new utterance."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self._windows: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=KEPT_FRAMES)
        self._rise: float | None = None

    def restart(self) -> None:
        self._windows.clear()
        self._rise = None

    def feed(self, x: np.ndarray, loud: bool) -> None:
        if loud and self._previous is not None:
            self._windows.append((self._previous, x))  # joined when the pitch is asked for
            self._rise = None
        self._previous = x

    def rise(self) -> float:
        """How far the utterance's end rose (semitones; 0 if too little of it was voiced)."""
        if self._rise is None:
            pitch = [hz for hz in _pitches(self._windows) if hz][-WORD_FRAMES:]
            self._rise = 0.0
            if len(pitch) >= MIN_FRAMES:
                end = statistics.median(pitch[-END_FRAMES:])  # np.median: 12 ms the first time
                self._rise = 12 * math.log2(end / sorted(pitch)[1])
        return self._rise


def _pitches(windows: deque[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """The pitch of each window in Hz, or 0 where it is not voiced (one batched FFT)."""
    if not windows:
        return []
    x = np.array(windows).reshape(len(windows), -1)
    x -= x.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(x, _FFT, axis=1)
    correlation = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, _FFT, axis=1)
    lags = correlation[:, MIN_LAG:MAX_LAG]
    peak = lags.argmax(axis=1)
    energy = correlation[:, 0]
    voiced = (energy > 0) & (lags[np.arange(len(x)), peak] >= VOICED * energy)
    return [
        NARROWBAND / (lag + MIN_LAG) if ok else 0.0 for lag, ok in zip(peak, voiced, strict=True)
    ]
