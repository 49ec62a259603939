"""One playback as a frame source for the media plane: a clip, looped, cut, and stoppable.

The plane calls a :class:`Player` once per tick (it is a :data:`~gateway.media.plane.FrameSource`
of an overlay), so playback time is the plane's clock: a leg whose audio is not in the plane for
a while (its endpoint being moved back from bypass) pauses the prompt rather than losing it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gateway.media.frame import FRAME_MS, NARROWBAND, samples_per_frame

FRAME = samples_per_frame(NARROWBAND)


class Player:
    """Plays ``clip`` (int16, 8 kHz) ``loops`` times; the first pass starts at ``offset_ms``
    and lasts at most ``timeout_ms`` (the Calls API's play semantics: later passes are whole).

    ``on_done`` is called once, from the tick that returned the last frame, when the playback
    ran to its end; :meth:`stop` ends it early without calling it.
    """

    def __init__(
        self,
        clip: np.ndarray,
        loops: int = 1,
        offset_ms: int = 0,
        timeout_ms: int | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self._clip = clip
        self._loops = max(loops, 1)
        start = min(len(clip), offset_ms * NARROWBAND // 1000)
        end = len(clip)
        if timeout_ms is not None:
            end = min(end, start + timeout_ms * NARROWBAND // 1000)
        self._pass = (start, end)  # the current pass's span of the clip
        self.total_ms = ((end - start) + (self._loops - 1) * len(clip)) * 1000 // NARROWBAND
        self._cursor = start
        self._passes_left = self._loops - 1
        self._on_done = on_done
        self.frames = 0  # frames played so far (total_ms: all of them, if nothing stops it)
        self.finished = False  # ran to its end
        self.stopped = False

    @property
    def played_ms(self) -> int:
        return self.frames * FRAME_MS

    def stop(self) -> None:
        self.stopped = True

    def __call__(self) -> np.ndarray | None:
        if self.stopped or self.finished:
            return None
        cursor, end = self._cursor, self._pass[1]
        if cursor + FRAME < end:  # the usual frame: a view of the clip, no copy
            self._cursor = cursor + FRAME
            self.frames += 1
            return self._clip[cursor : cursor + FRAME]
        frame = np.zeros(FRAME, dtype=np.int16)
        filled = 0
        while filled < FRAME:
            _, end = self._pass
            if self._cursor >= end:
                if self._passes_left == 0:
                    break
                self._passes_left -= 1
                self._pass = (0, len(self._clip))
                self._cursor = 0
                if not len(self._clip):
                    break
                continue
            take = min(FRAME - filled, end - self._cursor)
            frame[filled : filled + take] = self._clip[self._cursor : self._cursor + take]
            filled += take
            self._cursor += take
        if filled == 0:
            self._finish()
            return None
        self.frames += 1
        if self._cursor >= self._pass[1] and self._passes_left == 0:
            self._finish()
        return frame

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            if self._on_done is not None:
                self._on_done()
