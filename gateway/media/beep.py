"""Beep detection: the tone an answering machine plays before it records, found frame by frame.

As FreeSWITCH's mod_avmd looks for it: a sustained sine between 400 and 2000 Hz. Each 20 ms
frame that is well above the line's noise floor gets one Hann-windowed 160-point FFT (50 Hz
bins); it is *tonal* when its strongest bin is in band and, with its two neighbours either
side, holds most of the frame's energy and stands well above the bins beside it, which a
tone does (~99 % of the energy, 30 dB) and speech, whose energy spreads over harmonics
``f0`` apart and formants, rarely does for long. A beep is a run of tonal frames whose peak
stays within a bin of itself, allowing one jump (two-tone beeps) and one spoiled frame (the
frame where two tones meet, or a click). Its start is the first tonal frame's start.
"""

from __future__ import annotations

import numpy as np

from gateway.media.frame import NARROWBAND, samples_per_frame

FRAME = samples_per_frame(NARROWBAND)
BIN_HZ = NARROWBAND / FRAME  # 50 Hz
LOW_HZ, HIGH_HZ = 400.0, 2000.0
PURITY = 0.5  # share of a frame's energy in the peak's 5 bins: the tone dominates the frame
ISOLATION = 30.0  # their mean power over that of the 12 bins beside them (6 each side)
_TONE_BINS, _SIDE_BINS = 5, 12
MIN_FRAMES = 4  # 80 ms of tone: the shortest beeps are ~100 ms, frames straddle their ends
_WINDOW = np.hanning(FRAME).astype(np.float32)
# The band in bins: a tone's strongest bin is the nearest to it, so the edges are ±25 Hz.
_LOW_BIN, _HIGH_BIN = round(LOW_HZ / BIN_HZ), round(HIGH_HZ / BIN_HZ)


class BeepDetector:
    """Feed every frame (as float32) in order; ``feed`` returns a beep's start in ms once a
    beep is certain, then keeps quiet until ``reset``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._start_ms = 0
        self._tonal = 0  # tonal frames in the current run
        self._jumps = 0  # frequency jumps in the run (a two-tone beep has one)
        self._spoiled = 0  # non-tonal frames in a row inside the run
        self._bin = -10
        self.found = False

    def feed(self, x: np.ndarray, loud: bool, at_ms: int) -> int | None:
        """``x``: the frame; ``loud``: well above the noise
        floor (quieter frames are not looked at); ``at_ms``: the frame's start."""
        if self.found:
            return None
        peak = self._tonal_bin(x) if loud else None
        if peak is None:
            self._spoiled += 1
            if self._spoiled > 1:
                self._tonal = self._jumps = 0
            return None
        if self._tonal == 0:
            self._start_ms, self._jumps = at_ms, 0
        elif abs(peak - self._bin) > 1:
            self._jumps += 1
            if self._jumps > 1 or self._tonal < 2:  # not a two-tone beep: start afresh here
                self._start_ms, self._tonal, self._jumps = at_ms, 0, 0
        self._bin, self._spoiled = peak, 0
        self._tonal += 1
        if self._tonal >= MIN_FRAMES:
            self.found = True
            return self._start_ms
        return None

    @staticmethod
    def _tonal_bin(x: np.ndarray) -> int | None:
        """The peak bin if the frame is tonal and in band, else None."""
        spectrum = np.fft.rfft(x * _WINDOW)
        power = spectrum.real**2 + spectrum.imag**2
        peak = int(power.argmax())
        if not _LOW_BIN <= peak <= _HIGH_BIN:
            return None
        tone = power[peak - 2 : peak + 3].sum()
        beside = power[max(peak - 8, 0) : peak - 2].sum() + power[peak + 3 : peak + 9].sum()
        if tone < PURITY * power.sum() or tone * _SIDE_BINS < ISOLATION * _TONE_BINS * beside:
            return None
        return peak
