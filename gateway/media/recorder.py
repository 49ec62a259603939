"""Recording: 20 ms frames from a bridge's tap written to 8 kHz 16-bit mono WAV files.

A :class:`Recorder` is a frame tap (``recorder(leg_ids, frames)``, one int16 row per leg). Each
of its tracks is one file: the sum of every row (a call, or a dialog composed) or one leg's row
(a dialog participant; silence while that leg is not in the tap's bridge). The tick's work is
one numpy expression and a buffered write per track; the RIFF sizes are filled in on close.

Frames that never came (the legs were being re-anchored, the plane skipped a late tick) are
written as silence when the next frame comes and on stop, so a file is as long as the time it
was recording. A :class:`SilenceWatch` beside the files says when nobody has talked for a while
(``maxSilence``).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.media.frame import FRAME_MS, NARROWBAND, samples_per_frame
from gateway.media.vad import TalkDetector

log = logging.getLogger(__name__)

SAMPLE_WIDTH = 2
HEADER_SIZE = 44
_BUFFER = 64 * 1024  # about 4 s of audio per write(2)
_SLACK = 2  # frames a tick may be late by before a gap is filled with silence
_FRAME = samples_per_frame(NARROWBAND)
_SILENCE = bytes(_FRAME * SAMPLE_WIDTH)


def wav_header(data_size: int, sample_rate: int = NARROWBAND) -> bytes:
    """The 44-byte RIFF/WAVE header of linear 16-bit mono PCM with ``data_size`` bytes."""
    byte_rate = sample_rate * SAMPLE_WIDTH
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data_size, b"WAVE", b"fmt ", 16, 1, 1,
        sample_rate, byte_rate, SAMPLE_WIDTH, 8 * SAMPLE_WIDTH, b"data", data_size,
    )  # fmt: skip


class WavWriter:
    """One WAV file written as audio comes: a placeholder header first, the sizes at close."""

    def __init__(self, path: Path) -> None:
        self.data_size = 0
        self._file = open(path, "wb", buffering=_BUFFER)  # noqa: SIM115 - closed by close()
        self._file.write(wav_header(0))

    def write(self, pcm: bytes) -> None:
        self._file.write(pcm)
        self.data_size += len(pcm)

    def close(self) -> int:
        """Flush, write the real sizes and close; the file's size in bytes."""
        if self._file.closed:
            return HEADER_SIZE + self.data_size
        try:
            self._file.seek(0)
            self._file.write(wav_header(self.data_size))
        finally:
            self._file.close()
        return HEADER_SIZE + self.data_size

    @property
    def seconds(self) -> float:
        return self.data_size / (NARROWBAND * SAMPLE_WIDTH)


@dataclass(frozen=True)
class Track:
    """One file of a recording: ``leg_id`` None is the sum of every row (both directions)."""

    path: Path
    leg_id: str | None = None


class Recorder:
    """A frame tap writing its tracks until :meth:`stop`; frames after stop are ignored.

    A write that fails (disk full) stops the recorder and calls ``on_failure(error)`` once;
    that happens inside the tick, so the owner must defer untapping it.
    """

    def __init__(
        self,
        tracks: Sequence[Track],
        on_failure: Callable[[OSError], None],
        clock: Callable[[], float] = time.monotonic,
        watch: SilenceWatch | None = None,
    ) -> None:
        self._clock = clock
        self._on_failure = on_failure
        self._watch = watch
        self._tracks = list(tracks)
        self.writers: list[WavWriter] = []
        try:
            for track in self._tracks:
                self.writers.append(WavWriter(track.path))
        except OSError:
            self._close_all()
            raise
        self._started = clock()
        self._frames = 0
        self.stopped = False
        self.error: OSError | None = None

    def __call__(self, leg_ids: Sequence[str], frames: np.ndarray) -> None:
        if self.stopped:
            return
        try:
            self._fill_gap()
            for track, writer in zip(self._tracks, self.writers, strict=True):
                writer.write(_pcm(track.leg_id, leg_ids, frames))
            self._frames += 1
        except OSError as error:
            self._fail(error)
            return
        if self._watch is not None:
            self._watch(leg_ids, frames)

    def stop(self) -> None:
        """No more frames: pad to now. The files are closed by :meth:`close` (off the loop)."""
        if self.stopped:
            return
        try:
            self._fill_gap(slack=1)
        except OSError as error:
            self._fail(error)
        self.stopped = True

    def close(self) -> list[int]:
        """Finish every file (sizes in the header); their sizes in bytes. Raises OSError."""
        self.stopped = True
        return self._close_all()

    def _close_all(self) -> list[int]:
        sizes, failure = [], None
        for writer in self.writers:
            try:
                sizes.append(writer.close())
            except OSError as error:
                failure = error
        if failure is not None:
            raise failure
        return sizes

    def _fill_gap(self, slack: int = _SLACK) -> None:
        due = int((self._clock() - self._started) * 1000 // FRAME_MS)
        missing = due - self._frames
        if missing > slack:
            for writer in self.writers:
                writer.write(_SILENCE * missing)
            self._frames += missing

    def _fail(self, error: OSError) -> None:
        self.stopped = True
        self.error = error
        log.warning("recording to %s failed: %s", [t.path.name for t in self._tracks], error)
        self._on_failure(error)


class SilenceWatch:
    """Calls ``on_silence()`` once when nobody in the tapped rows has talked for ``seconds``
    (talk as conferences detect it: ``gateway/media/vad.py``, with its 500 ms hangover counted
    as silence already). Called from the tick, like the recorder."""

    def __init__(self, seconds: int, on_silence: Callable[[], None]) -> None:
        self._detector = TalkDetector()
        self._limit = seconds * 1000 // FRAME_MS
        self._on_silence = on_silence
        self._talking: set[Hashable] = set()
        self._quiet = 0

    def __call__(self, leg_ids: Sequence[str], frames: np.ndarray) -> None:
        for key, talking in self._detector.update(leg_ids, frames):
            if talking:
                self._talking.add(key)
            else:
                self._talking.discard(key)
                if not self._talking:  # quiet since the last loud frame, not since now
                    self._quiet = self._detector.settings.stop_frames
        self._talking.intersection_update(leg_ids)  # a leg that left the bridge talks no more
        if self._talking:
            self._quiet = 0
            return
        self._quiet += 1
        if self._quiet == self._limit:
            self._on_silence()


def _pcm(leg_id: str | None, leg_ids: Sequence[str], frames: np.ndarray) -> bytes:
    """The bytes a track takes from one tick: every row summed, or one leg's row."""
    if leg_id is None:
        if len(frames) == 1:
            return frames[0].astype("<i2", copy=False).tobytes()
        total = frames.sum(axis=0, dtype=np.int32)
        np.minimum(total, 32767, out=total)  # saturate in place: np.clip costs twice as much
        np.maximum(total, -32768, out=total)
        return total.astype("<i2").tobytes()
    if leg_id not in leg_ids:
        return _SILENCE
    return frames[leg_ids.index(leg_id)].astype("<i2", copy=False).tobytes()
