"""Sending a DTMF string on a leg, paced by the media plane's clock.

A :class:`DtmfSender` is a frame source played to the leg: each tick it gives the in-band tone
of the digit due (or silence), or, when the endpoint takes RFC 4733, hands the digit to the
leg's port at its first frame (``out_of_band``) and gives nothing while the port sends the
events. ``w`` pauses half a second and ``W`` a second, as the Calls API's send-dtmf allows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from gateway.media.dtmf_tone import dtmf_samples
from gateway.media.frame import FRAME_MS, NARROWBAND, samples_per_frame

log = logging.getLogger(__name__)

DIGITS = "0123456789*#ABCD"
PAUSES_MS = {"w": 500, "W": 1000}
DIGIT_MS = 100  # each digit's tone (and RFC 4733 event) lasts this long
GAP_MS = 100  # silence after each digit, so that repeated digits stay apart
FRAME = samples_per_frame(NARROWBAND)


def invalid_dtmf(dtmf: str) -> str | None:
    """Why ``dtmf`` cannot be sent (None: it can)."""
    if not dtmf:
        return "must not be empty"
    bad = sorted({char for char in dtmf if char not in DIGITS and char not in PAUSES_MS})
    if bad:
        return f"has characters that are not DTMF: {''.join(bad)!r} (0-9, *, #, A-D, w, W)"
    return None


class DtmfSender:
    """One send-dtmf request as a frame source; ``on_done`` is called from the tick that
    ends it. ``out_of_band(digit)`` returns whether the leg sends the digit by RFC 4733
    itself; the first digit decides for the whole string."""

    def __init__(
        self,
        dtmf: str,
        out_of_band: Callable[[str], bool],
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self._schedule: list[tuple[str | None, int]] = []  # (digit or None for silence, frames)
        for char in dtmf:
            if char in PAUSES_MS:
                self._schedule.append((None, PAUSES_MS[char] // FRAME_MS))
            else:
                self._schedule.append((char, DIGIT_MS // FRAME_MS))
                self._schedule.append((None, GAP_MS // FRAME_MS))
        self._out_of_band = out_of_band
        self._on_done = on_done
        self._step = 0
        self._frame = 0  # frames played of the current step
        self._tone: np.ndarray | None = None
        self.rfc4733: bool | None = None  # decided at the first digit
        self.finished = False

    def __call__(self) -> np.ndarray | None:
        if self.finished:
            return None
        if self._step >= len(self._schedule):
            self._finish()
            return None
        digit, frames = self._schedule[self._step]
        samples: np.ndarray | None = None
        if digit is not None:
            if self._frame == 0:
                if self.rfc4733 is None or self.rfc4733:
                    self.rfc4733 = self._send_out_of_band(digit)
                if not self.rfc4733:
                    self._tone = dtmf_samples(digit, DIGIT_MS)
            if not self.rfc4733 and self._tone is not None:
                start = self._frame * FRAME
                samples = self._tone[start : start + FRAME]
        self._frame += 1
        if self._frame >= frames:
            self._step += 1
            self._frame = 0
            if self._step >= len(self._schedule):
                self._finish()
        return samples

    def _send_out_of_band(self, digit: str) -> bool:
        """The leg's RFC 4733, else tones: a failing port must not stall the string (this
        runs in the media tick, where an exception would drop the sender unannounced)."""
        try:
            return self._out_of_band(digit)
        except Exception:
            log.exception("sending DTMF %r out of band failed; sending tones", digit)
            return False

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            if self._on_done is not None:
                self._on_done()
