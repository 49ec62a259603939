"""The media port of a WebRTC leg: aiortc's tracks on one side, the media plane's 20 ms
8 kHz int16 frames on the other.

Two clocks meet here, the plane's tick and aiortc's (its receiver delivers decoded frames as
they arrive; its sender pulls ``recv`` on the track's own pace). Each direction has a small
queue between them: the plane plays from a short prebuffer and drops the oldest frames when
arrivals pile up; the outgoing track paces itself on an absolute timeline and sends silence
when the plane wrote nothing (so RTP keeps flowing while the leg is in no bridge).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

from gateway.media.frame import NARROWBAND

log = logging.getLogger(__name__)

SAMPLES = NARROWBAND // 50  # 20 ms at 8 kHz
PREBUFFER = 2  # frames buffered before the first is played: covers the two clocks' phase
MAX_QUEUED = 6  # past this, the oldest frames go: latency stays bounded (120 ms at worst)
# ...and a backlog above the target (2 frames out, 4 in) is dropped as soon as it is seen.
TIME_BASE = fractions.Fraction(1, NARROWBAND)


class PacedTrack(MediaStreamTrack, ABC):
    """An audio track of 20 ms 8 kHz frames on an absolute timeline from its first frame (a
    late ``recv`` does not push the later ones back); subclasses say what each frame holds."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._sent = 0

    @abstractmethod
    def next_samples(self, index: int) -> np.ndarray:
        """Frame ``index``'s 160 int16 samples."""

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            due = self._start + self._sent * SAMPLES / NARROWBAND
            await asyncio.sleep(max(0.0, due - loop.time()))
        samples = self.next_samples(self._sent)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = NARROWBAND
        frame.pts = self._sent * SAMPLES
        frame.time_base = TIME_BASE
        self._sent += 1
        return frame


class OutboundTrack(PacedTrack):
    """What the endpoint hears: the frames the plane wrote, at 20 ms pace, else silence."""

    def __init__(self) -> None:
        super().__init__()
        self._frames: deque[np.ndarray] = deque(maxlen=MAX_QUEUED)
        self._silence = np.zeros(SAMPLES, dtype=np.int16)

    def put(self, samples: np.ndarray) -> None:
        self._frames.append(samples)

    def next_samples(self, index: int) -> np.ndarray:
        while len(self._frames) > PREBUFFER:  # a backlog (the start, a stall): catch up
            self._frames.popleft()
        return self._frames.popleft() if self._frames else self._silence


class WebRtcMediaPort:
    """The :class:`~gateway.media.port.MediaPort` of one WebRTC leg."""

    sample_rate = NARROWBAND

    def __init__(self, media_timeout: float = 5.0, on_lost: Callable[[], None] | None = None):
        self.outbound = OutboundTrack()
        self.muted = False  # the endpoint said it muted itself: it is heard as silence
        # Once media flowed, a gap this long means it is gone: ``on_lost`` (a browser keeps
        # sending RTP while muted, so silence is no gap).
        self.media_timeout = media_timeout
        self.on_lost = on_lost
        self.frames_received = 0
        self._heard: deque[np.ndarray] = deque(maxlen=MAX_QUEUED)
        self._playing = False
        self._pending = np.zeros(0, dtype=np.int16)
        self._resampler = AudioResampler(format="s16", layout="mono", rate=NARROWBAND)
        self._reader: asyncio.Task[None] | None = None

    def attach(self, track: MediaStreamTrack) -> None:
        """Start taking what the remote audio track delivers (aiortc's ``track`` event)."""
        if self._reader is None and track.kind == "audio":
            self._reader = asyncio.get_running_loop().create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            self._take(await track.recv())  # however long ICE and DTLS take to connect
            while True:
                async with asyncio.timeout(self.media_timeout):
                    frame = await track.recv()
                self._take(frame)
        except MediaStreamError:
            return  # the track ended (the peer connection closed)
        except TimeoutError:
            log.info("no media for %.1f s: the WebRTC leg has lost it", self.media_timeout)
            if self.on_lost is not None:
                self.on_lost()
        except Exception:
            log.exception("reading a WebRTC leg's audio failed: it is heard as silence")

    def _take(self, frame: AudioFrame) -> None:
        """Resample to 8 kHz mono, cut into 20 ms frames, queue them for the plane."""
        for out in self._resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            self._pending = np.concatenate((self._pending, samples))
        while len(self._pending) >= SAMPLES:
            self._heard.append(self._pending[:SAMPLES].copy())
            self._pending = self._pending[SAMPLES:]
            self.frames_received += 1

    def read(self) -> np.ndarray | None:
        if not self._playing:
            if len(self._heard) < PREBUFFER:
                return None
            self._playing = True
        if not self._heard:
            self._playing = False  # an underrun: buffer up again before playing on
            return None
        while len(self._heard) > 2 * PREBUFFER:  # a burst after a stall: back to the target
            self._heard.popleft()
        samples = self._heard.popleft()
        return None if self.muted else samples

    def write(self, samples: np.ndarray) -> None:
        self.outbound.put(samples)

    async def close(self) -> None:
        self.outbound.stop()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
