"""Text to speech with espeak-ng: 8 kHz int16 samples for the say action and TEXT play content.

espeak-ng runs as a subprocess (text on stdin, WAV on stdout: no temporary files, nothing on
the command line but options), at most one per CPU at a time, and resampling runs in a worker
thread, so synthesis neither blocks the event loop nor starves the media tick. Results are
cached (LRU within a byte budget) because IVR prompts repeat; concurrent requests for the same
speech share one process. A synthesis whose every requester is cancelled kills its process.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from math import ceil, gcd

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gateway.media.frame import NARROWBAND
from gateway.media.voices import Voice

DEFAULT_WPM = 175  # espeak-ng's own default speed, speechRate 1.0
MIN_SPEECH_RATE, MAX_SPEECH_RATE = 0.5, 2.0
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024  # ~35 minutes of 8 kHz speech

_Key = tuple[str, Voice, int]


class SynthesisFailed(Exception):
    """espeak-ng could not produce speech (missing, failed, or said nothing)."""


@dataclass
class _Job:
    """One running synthesis and how many requests wait for it."""

    task: asyncio.Task[np.ndarray]
    waiters: int = 0


class SpeechSynthesizer:
    """espeak-ng behind a cache; one per event loop (its syntheses are tasks on that loop)."""

    def __init__(
        self,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        concurrency: int | None = None,
        command: str = "espeak-ng",
    ) -> None:
        self.cache_bytes = cache_bytes
        self._command = command
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 1)
        self._cache: OrderedDict[_Key, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._jobs: dict[_Key, _Job] = {}
        self.processes_started = 0  # espeak-ng runs so far: cache misses that got a slot

    async def synthesize(self, text: str, voice: Voice, speech_rate: float = 1.0) -> np.ndarray:
        """``text`` (plain, or SSML if it starts with ``<speak``) spoken by ``voice``, as
        read-only int16 mono samples at 8 kHz; ``speech_rate`` 0.5-2.0 scales the speed."""
        if not text.strip():
            raise ValueError("text must not be empty")
        key = (text, voice, words_per_minute(speech_rate))
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        job = self._jobs.get(key)
        if job is None or job.task.cancelled():
            job = self._jobs[key] = _Job(asyncio.create_task(self._produce(key)))
            job.task.add_done_callback(lambda _: self._forget(key, job))
        job.waiters += 1
        try:
            return await asyncio.shield(job.task)
        finally:
            job.waiters -= 1
            if job.waiters == 0 and not job.task.done():
                self._forget(key, job)  # a request from now on starts afresh
                job.task.cancel()  # nobody wants it any more: its process is killed
                await asyncio.wait([job.task])

    def _forget(self, key: _Key, job: _Job) -> None:
        if self._jobs.get(key) is job:
            del self._jobs[key]

    async def _produce(self, key: _Key) -> np.ndarray:
        text, voice, wpm = key
        async with self._slots:
            wav = await self._espeak(text, voice, wpm)
            # ~3 ms a second of speech: a long prompt would hold up the 20 ms media tick.
            samples = await asyncio.to_thread(_narrowband, *_pcm(wav))
        samples.setflags(write=False)  # shared by every request for this speech
        self._remember(key, samples)
        return samples

    async def _espeak(self, text: str, voice: Voice, wpm: int) -> bytes:
        options = ["--stdout", "-v", voice.espeak_name, "-s", str(wpm)]
        if text.lstrip().startswith("<speak"):
            options.append("-m")  # SSML
        try:
            process = await asyncio.create_subprocess_exec(
                self._command, *options,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        except OSError as error:
            raise SynthesisFailed(f"cannot run {self._command}: {error}") from error
        self.processes_started += 1
        try:
            wav, errors = await process.communicate(text.encode())
        except BaseException:  # cancelled: leave no process behind
            if process.returncode is None:
                process.kill()
            # Read to the end: a pipe whose reading paused (its buffer full) never sees the
            # exit, and the process would never count as ended.
            await process.communicate()
            raise
        if process.returncode != 0:
            reason = errors.decode(errors="replace").strip() or "no message"
            raise SynthesisFailed(f"{self._command} exited with {process.returncode}: {reason}")
        return wav

    def _remember(self, key: _Key, samples: np.ndarray) -> None:
        if samples.nbytes > self.cache_bytes:
            return
        self._cache[key] = samples
        self._cached_bytes += samples.nbytes
        while self._cached_bytes > self.cache_bytes:
            _, evicted = self._cache.popitem(last=False)
            self._cached_bytes -= evicted.nbytes


def words_per_minute(speech_rate: float) -> int:
    """espeak-ng's ``-s`` for a Calls API speechRate."""
    if not (math.isfinite(speech_rate) and MIN_SPEECH_RATE <= speech_rate <= MAX_SPEECH_RATE):
        raise ValueError(
            f"speechRate must be within [{MIN_SPEECH_RATE}, {MAX_SPEECH_RATE}], not {speech_rate}"
        )
    return round(DEFAULT_WPM * speech_rate)


def _pcm(wav: bytes) -> tuple[np.ndarray, int]:
    """(int16 samples, sample rate) of espeak-ng's streamed WAV, whose sizes are placeholders:
    the data runs to the end of the stream."""
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise SynthesisFailed("espeak-ng gave no WAV audio")
    offset, rate = 12, None
    while offset + 8 <= len(wav):
        chunk, size = wav[offset : offset + 4], struct.unpack_from("<I", wav, offset + 4)[0]
        body = offset + 8
        if chunk == b"fmt ":
            encoding, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", wav, body)
            if (encoding, channels, bits) != (1, 1, 16):
                raise SynthesisFailed(f"espeak-ng gave {channels}x{bits}-bit audio, not mono PCM")
        elif chunk == b"data" and rate is not None:
            data = wav[body : len(wav) - (len(wav) - body) % 2]
            if not data:
                raise SynthesisFailed("espeak-ng said nothing")
            return np.frombuffer(data, dtype="<i2").astype(np.int16), rate
        offset = body + size + size % 2
    raise SynthesisFailed("espeak-ng's WAV has no audio data")


# Resampling: resample.py streams 20 ms frames between the media rates (8-48 kHz); espeak-ng
# speaks at 22.05 kHz and a whole utterance is at hand, so this is a one-shot polyphase FIR
# (Kaiser-windowed sinc, flat to 3.4 kHz, 80 dB down from 4 kHz on) centred on each output.
_PASSBAND_HZ, _STOPBAND_HZ, _STOPBAND_DB = 3400.0, NARROWBAND / 2, 80.0


@cache
def _filter_bank(rate: int) -> tuple[int, int, np.ndarray, int]:
    """(up, down, bank, centre): bank[phase, m] is the tap weighing input ``i - m`` for an
    output at upsampled position ``i * up + phase``; ``centre`` is the middle tap's index."""
    g = gcd(rate, NARROWBAND)
    up, down = NARROWBAND // g, rate // g
    fast = rate * up
    width = 2 * np.pi * (_STOPBAND_HZ - _PASSBAND_HZ) / fast
    half = ceil((_STOPBAND_DB - 8) / (2.285 * width) / 2)
    t = np.arange(-half, half + 1)
    cutoff = (_PASSBAND_HZ + _STOPBAND_HZ) / 2 / fast
    taps = 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(len(t), 0.1102 * (_STOPBAND_DB - 8.7))
    taps *= up / taps.sum()  # zero-stuffing by ``up`` costs that much gain
    padded = np.zeros(ceil(len(taps) / up) * up)
    padded[: len(taps)] = taps
    return up, down, padded.reshape(-1, up).T.copy(), half


def _narrowband(samples: np.ndarray, rate: int) -> np.ndarray:
    """``samples`` at ``rate`` as 8 kHz int16, without delay.

    Output ``j`` sits at upsampled position ``j * down + centre``; outputs ``up`` apart share a
    filter phase and lie ``down`` inputs apart, so each phase is one strided matrix product.
    """
    if rate == NARROWBAND:
        return samples.copy()
    up, down, bank, centre = _filter_bank(rate)
    taps_per_phase = bank.shape[1]
    x = np.zeros(len(samples) + 2 * taps_per_phase)  # zeros around: every window is inside
    x[taps_per_phase : taps_per_phase + len(samples)] = samples
    windows = sliding_window_view(x, taps_per_phase)  # windows[s] = x[s : s + taps_per_phase]
    out = np.empty(len(samples) * up // down)
    for first in range(min(up, len(out))):
        newest, phase = divmod(first * down + centre, up)
        start = newest + 1  # window ending at input ``newest`` (x is offset by taps_per_phase)
        outputs = out[first::up]
        outputs[:] = windows[start::down][: len(outputs)] @ bank[phase, ::-1]
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)
