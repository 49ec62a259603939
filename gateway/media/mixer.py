"""Mixing: every participant hears the sum of the others (N-1), never itself.

One call per bridge per tick: the frames are stacked into a 2-D array, summed once, and each
participant's own row subtracted, then clipped to int16. Two-party bridges are the N = 2 case.
"""

from __future__ import annotations

import numpy as np


def mix_minus(frames: np.ndarray, gains: np.ndarray | None = None) -> np.ndarray:
    """``frames``: int16 [participants, samples]. Returns what each participant hears.

    ``gains`` (one per participant, 0 for a muted one) scales what each contributes.
    """
    wide = frames.astype(np.int32)
    if gains is not None:
        wide = (wide * gains[:, None]).astype(np.int32)
    total = wide.sum(axis=0, dtype=np.int32)
    heard = total[None, :] - wide
    return np.clip(heard, -32768, 32767).astype(np.int16)
