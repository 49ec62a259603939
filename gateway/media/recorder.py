"""Recording: 20 ms frames from a bridge's tap written to 8 kHz 16-bit WAV files.

A :class:`Recorder` is a frame tap (``recorder(leg_ids, frames)``, one int16 row per leg). Each
of its tracks is one file: the sum of every row (a call, or a dialog or conference composed),
one leg's row (a participant; silence while that leg is not in the tap's bridge), or a stereo
pair: one leg's row on the left, the sum of the other rows (what that leg hears from them) on
the right. Tracks may be added and ended while recording (participants joining and leaving a
conference). The tick's work is one numpy expression and a buffered write per track; the RIFF
sizes are filled in on close, or by :func:`repair_wav` after a crash.

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


def wav_header(data_size: int, sample_rate: int = NARROWBAND, channels: int = 1) -> bytes:
    """The 44-byte RIFF/WAVE header of linear 16-bit PCM with ``data_size`` bytes."""
    block = SAMPLE_WIDTH * channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data_size, b"WAVE", b"fmt ", 16, 1, channels,
        sample_rate, sample_rate * block, block, 8 * SAMPLE_WIDTH, b"data", data_size,
    )  # fmt: skip


def wav_seconds(data_size: int, channels: int = 1, sample_rate: int = NARROWBAND) -> float:
    return data_size / (sample_rate * SAMPLE_WIDTH * channels)


def repair_wav(path: Path, channels: int = 1) -> int:
    """Make a WAV file a process left half-written usable: the header's sizes from the audio
    actually on disk (cut to whole sample frames). Returns the audio's size in bytes (0 when
    there is none, or no file)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    block = SAMPLE_WIDTH * channels
    data_size = max(0, size - HEADER_SIZE) // block * block
    with path.open("r+b") as file:
        file.truncate(HEADER_SIZE + data_size)
        file.seek(0)
        file.write(wav_header(data_size, channels=channels))
    return data_size


class WavWriter:
    """One WAV file written as audio comes: a placeholder header first, the sizes at close."""

    def __init__(self, path: Path, channels: int = 1) -> None:
        self.path = path
        self.data_size = 0
        self.channels = channels
        self._file = open(path, "wb", buffering=_BUFFER)  # noqa: SIM115 - closed by close()
        self._file.write(wav_header(0, channels=channels))

    def write(self, pcm: bytes) -> None:
        self._file.write(pcm)
        self.data_size += len(pcm)

    def close(self) -> int:
        """Flush, write the real sizes and close; the file's size in bytes."""
        if self._file.closed:
            return HEADER_SIZE + self.data_size
        try:
            self._file.seek(0)
            self._file.write(wav_header(self.data_size, channels=self.channels))
        finally:
            self._file.close()
        return HEADER_SIZE + self.data_size

    @property
    def seconds(self) -> float:
        return wav_seconds(self.data_size, self.channels)


@dataclass(frozen=True)
class Track:
    """One file of a recording: ``leg_id`` None is the sum of every row (both directions);
    ``stereo``: the leg's row left, the other rows summed right."""

    path: Path
    leg_id: str | None = None
    stereo: bool = False

    @property
    def channels(self) -> int:
        return 2 if self.stereo else 1


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
        self.writers: list[WavWriter] = []  # every track's, in the order they were added
        self._live: dict[Path, tuple[Track, WavWriter]] = {}
        try:
            for track in tracks:
                self.add(track)
        except OSError:
            self._close_all()
            raise
        self._started = clock()
        self._frames = 0
        self.stopped = False
        self.error: OSError | None = None

    def add(self, track: Track) -> None:
        """Record one more file from the next frame on. Raises OSError (nothing added)."""
        writer = WavWriter(track.path, track.channels)
        self.writers.append(writer)
        self._live[track.path] = (track, writer)

    def end(self, path: Path) -> None:
        """Stop writing one track (closed with the others by :meth:`close`)."""
        self._live.pop(path, None)

    def begin(self) -> None:
        """Count the recording's time from now (the recorder was made before a beep)."""
        self._started, self._frames = self._clock(), 0

    def __call__(self, leg_ids: Sequence[str], frames: np.ndarray) -> None:
        if self.stopped:
            return
        try:
            self._fill_gap()
            for track, writer in list(self._live.values()):
                writer.write(_pcm(track, leg_ids, frames))
            self._frames += 1
            if self._watch is not None:  # talk is the legs' rows, not the prompts after them
                self._watch(leg_ids, frames[: len(leg_ids)])
        except OSError as error:
            self._fail(error)
        except Exception as error:  # a bug: the recording fails loudly, not silently
            log.exception("recording to %s failed", [p.name for p in self._live])
            self._fail(OSError(f"the recorder failed: {error!r}"))

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
            for track, writer in self._live.values():
                writer.write(_SILENCE * (missing * track.channels))
            self._frames += missing

    def _fail(self, error: OSError) -> None:
        self.stopped = True
        self.error = error
        log.warning("recording to %s failed: %s", [p.name for p in self._live], error)
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


def _pcm(track: Track, leg_ids: Sequence[str], frames: np.ndarray) -> bytes:
    """The bytes a track takes from one tick: every row summed, one leg's row, or a leg's row
    interleaved with the sum of the others."""
    leg_id = track.leg_id
    if leg_id is None:
        return _summed(frames).astype("<i2", copy=False).tobytes()
    row = leg_ids.index(leg_id) if leg_id in leg_ids else None
    if not track.stereo:
        return _SILENCE if row is None else frames[row].astype("<i2", copy=False).tobytes()
    pair = np.zeros((_FRAME, 2), dtype="<i2")
    if row is not None:
        pair[:, 0] = frames[row]
    others = [n for n in range(len(frames)) if n != row]
    if others:
        pair[:, 1] = _summed(frames[others])
    return pair.tobytes()


def _summed(frames: np.ndarray) -> np.ndarray:
    if len(frames) == 1:
        return frames[0]
    total = frames.sum(axis=0, dtype=np.int32)
    np.minimum(total, 32767, out=total)  # saturate in place: np.clip costs twice as much
    np.maximum(total, -32768, out=total)
    return total.astype(np.int16)
