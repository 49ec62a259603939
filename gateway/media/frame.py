"""The one frame format of the media plane: 20 ms of mono signed 16-bit PCM at a sample rate.

Batches of frames (one row per leg) are plain 2-D int16 arrays; codecs and mixers take and
give those, so a tick's work over many legs is one numpy call, not a loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_MS = 20
NARROWBAND = 8000
WIDEBAND = 16000


def samples_per_frame(sample_rate: int) -> int:
    return sample_rate * FRAME_MS // 1000


@dataclass(slots=True)
class AudioFrame:
    """20 ms of audio: ``samples`` is int16, shape (samples_per_frame(sample_rate),)."""

    samples: np.ndarray
    sample_rate: int = NARROWBAND

    def __post_init__(self) -> None:
        if self.samples.dtype != np.int16 or self.samples.ndim != 1:
            raise ValueError("a frame is one row of int16 samples")
        if len(self.samples) != samples_per_frame(self.sample_rate):
            raise ValueError(
                f"a {FRAME_MS} ms frame at {self.sample_rate} Hz has "
                f"{samples_per_frame(self.sample_rate)} samples, not {len(self.samples)}"
            )

    @classmethod
    def silence(cls, sample_rate: int = NARROWBAND) -> AudioFrame:
        return cls(np.zeros(samples_per_frame(sample_rate), dtype=np.int16), sample_rate)


def frames_of(pcm: np.ndarray, sample_rate: int) -> list[AudioFrame]:
    """Cut int16 PCM into whole frames (the last one padded with silence)."""
    size = samples_per_frame(sample_rate)
    padded = np.zeros(-(-len(pcm) // size) * size, dtype=np.int16)
    padded[: len(pcm)] = pcm
    return [AudioFrame(row.copy(), sample_rate) for row in padded.reshape(-1, size)]
