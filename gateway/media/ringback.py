"""A locally generated ringback tone: a frame source that rings on a national cadence.

``ringbackGeneration`` replaces the remote ringing (or early media) of a call being placed by
a tone of our own, so a caller hears the same ringback whoever is dialled. The tone is one
period of its cadence made once per tone (a few seconds of samples, shared read-only by every
:class:`Ringback`); a ringback hands out views of it, frame by frame, and nothing (None)
through the silences, so the plane mixes nothing then.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from gateway.media.frame import FRAME_MS, NARROWBAND, samples_per_frame

FRAME = samples_per_frame(NARROWBAND)
LEVEL = 0.3  # peak amplitude of the whole tone, a fraction of full scale (about -10 dBFS)


@dataclass(frozen=True)
class RingbackTone:
    """A national ringback: its frequencies (summed) and its cadence, on and off in turn
    (ms, multiples of a frame, starting with a tone)."""

    name: str
    frequencies: tuple[float, ...]
    cadence_ms: tuple[int, ...]

    @property
    def period_ms(self) -> int:
        return sum(self.cadence_ms)


# ITU-T E.180 / CEPT (most of Europe), the North American precise ringback (ANSI T1.401),
# and the UK's double ring (BT SIN 350).
TONES: dict[str, RingbackTone] = {
    tone.name: tone
    for tone in (
        RingbackTone("eu", (425.0,), (1000, 4000)),
        RingbackTone("us", (440.0, 480.0), (2000, 4000)),
        RingbackTone("uk", (400.0, 450.0), (400, 200, 400, 2000)),
    )
}


def ringback_tone(name: str) -> RingbackTone:
    """The tone the ``ringback_tone`` setting names; ValueError naming the choices if none."""
    tone = TONES.get(name.strip().lower())
    if tone is None:
        choices = ", ".join(sorted(TONES))
        raise ValueError(f"ringback_tone {name!r} is not a known ringback; choose one of {choices}")
    return tone


@cache
def _frames(tone: RingbackTone) -> tuple[np.ndarray | None, ...]:
    """One period of the cadence, a frame each: a read-only view of the tone, or None."""
    t = np.arange(tone.period_ms * NARROWBAND // 1000) / NARROWBAND
    wave = sum(np.sin(2 * np.pi * f * t) for f in tone.frequencies)
    samples = np.rint(LEVEL * 32767 / len(tone.frequencies) * wave).astype(np.int16)
    samples.flags.writeable = False
    frames: list[np.ndarray | None] = []
    on, start = True, 0
    for span in tone.cadence_ms:
        for index in range(start // FRAME_MS, (start + span) // FRAME_MS):
            frames.append(samples[index * FRAME : (index + 1) * FRAME] if on else None)
        on, start = not on, start + span
    return tuple(frames)


class Ringback:
    """Rings from its first frame until :meth:`stop`: a :data:`~gateway.media.plane.FrameSource`
    called once per tick by the bridge it is played into."""

    def __init__(self, tone: RingbackTone) -> None:
        self._frames = _frames(tone)
        self.frames = 0  # ticks rung so far, silences included
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def __call__(self) -> np.ndarray | None:
        if self.stopped:
            return None
        frame = self._frames[self.frames % len(self._frames)]
        self.frames += 1
        return frame
