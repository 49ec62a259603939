"""In-band DTMF: a key press as its two tones (ITU-T Q.23), for legs that took no
telephone-event and for simulated phones that key as audio.

The frequencies are written out here rather than shared with the detector
(``dtmf_detect.py``), so that a slip in either table shows in the tests that run one into the
other.
"""

from __future__ import annotations

import numpy as np

from gateway.media.frame import NARROWBAND

ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COLUMN_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")  # KEYPAD[row][column]
RAMP_MS = 1.0  # raised-cosine fade in and out: no click at the edges, no change to detection
FULL_SCALE = 32767.0


def dtmf_samples(
    digit: str,
    duration_ms: float,
    level_dbfs: float = -10.0,
    sample_rate: int = NARROWBAND,
    *,
    twist_db: float = 0.0,
    deviation: float = 0.0,
) -> np.ndarray:
    """One key's two tones for ``duration_ms``, as int16.

    ``level_dbfs`` is each tone's level (a full-scale sine is 0 dBFS), so the pair peaks 6 dB
    higher; two -10 dBFS tones never clip. ``twist_db`` makes the column (high) tone louder
    than the row tone (negative: quieter) and ``deviation`` moves both frequencies by that
    fraction: what a detector's limits are tested with.
    """
    key = digit.upper()
    row = next((r for r, keys in enumerate(KEYPAD) if key in keys), None)
    if len(key) != 1 or row is None:
        raise ValueError(f"{digit!r} is not a DTMF key (0-9 * # A-D)")
    low = ROW_HZ[row] * (1 + deviation)
    high = COLUMN_HZ[KEYPAD[row].index(key)] * (1 + deviation)
    t = np.arange(round(duration_ms * sample_rate / 1000)) / sample_rate
    amplitude = 10 ** (level_dbfs / 20) * FULL_SCALE
    pair = amplitude * np.sin(2 * np.pi * low * t)
    pair += amplitude * 10 ** (twist_db / 20) * np.sin(2 * np.pi * high * t)
    ramp = min(round(RAMP_MS * sample_rate / 1000), len(t) // 2)
    if ramp:
        fade = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        pair[:ramp] *= fade
        pair[-ramp:] *= fade[::-1]
    return np.clip(np.rint(pair), -32768, 32767).astype(np.int16)
