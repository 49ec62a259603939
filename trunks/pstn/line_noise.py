"""Background noise of a simulated line: none, white, pink or babble-like, at a level in dBFS.

A greeting is mixed with it, and whoever plays the greeting continues the same noise after it
(``LineNoise.samples`` with a later ``start``), so the line does not fall silent when the
greeting ends. Deterministic: the same noise, seed and start give the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.media.frame import NARROWBAND

KINDS = ("none", "white", "pink", "babble")
_BLOCK = NARROWBAND  # noise is made in 1 s blocks, each from its own seed: any start is cheap


@dataclass(frozen=True)
class LineNoise:
    kind: str = "none"  # one of KINDS
    dbfs: float = -90.0  # RMS level (a full-scale sine is 0 dB)
    seed: int = 0

    def samples(self, count: int, start: int = 0) -> np.ndarray:
        """``count`` float samples (int16 scale) of this noise from sample ``start`` on."""
        if self.kind == "none" or count <= 0:
            return np.zeros(max(count, 0))
        first, last = start // _BLOCK, (start + count - 1) // _BLOCK
        blocks = np.concatenate([self._block(b) for b in range(first, last + 1)])
        offset = start - first * _BLOCK
        return blocks[offset : offset + count]

    def _block(self, index: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, index))
        white = rng.standard_normal(_BLOCK)
        if self.kind == "white":
            shaped = white
        elif self.kind == "pink":
            shaped = _shape(white, lambda f: 1 / np.sqrt(np.maximum(f, 50.0)))
        elif self.kind == "babble":
            # Speech-shaped noise (most energy 300-1500 Hz) under a syllable-rate envelope:
            # the uneven level of far-off voices, which a fixed noise floor does not follow.
            speechy = _shape(white, lambda f: np.exp(-(((f - 700.0) / 900.0) ** 2)))
            bumps = rng.random(40) < 0.6
            envelope = np.repeat(0.45 + 0.55 * bumps, _BLOCK // 40)
            envelope = np.convolve(envelope, np.hanning(400) / np.hanning(400).sum(), "same")
            shaped = speechy * envelope
        else:
            raise ValueError(f"unknown noise kind {self.kind!r}; one of {', '.join(KINDS)}")
        rms = np.sqrt(np.mean(shaped * shaped)) or 1.0
        return shaped / rms * 32767 * 10 ** (self.dbfs / 20) / np.sqrt(2)


def _shape(white: np.ndarray, gain) -> np.ndarray:
    """``white`` filtered by ``gain(frequency in Hz)`` (one FFT over the block)."""
    spectrum = np.fft.rfft(white)
    frequencies = np.fft.rfftfreq(len(white), 1 / NARROWBAND)
    return np.fft.irfft(spectrum * gain(frequencies), len(white))
