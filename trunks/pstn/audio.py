"""What a simulated phone says and hears: a media port with a source of 20 ms frames (a tone,
silence, speech from espeak-ng) and a recording of everything played to it.

Tests listen through the platform with these: set a phone's source, bridge it, then read what
the other phone heard (``GET /pstn/1/calls/{callId}/heard`` gives it as WAV).
"""

from __future__ import annotations

import asyncio
import io
import wave
import weakref
from collections.abc import Iterator

import numpy as np

from gateway.media.frame import NARROWBAND, samples_per_frame
from gateway.media.tts import SpeechSynthesizer, SynthesisFailed
from gateway.media.voices import resolve_voice

FRAME = samples_per_frame(NARROWBAND)
MAX_HEARD_FRAMES = 50 * 600  # ten minutes of what a phone heard; older audio is dropped
SPEECH_CACHE_BYTES = 8 * 1024 * 1024

_SYNTHESIZERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SpeechSynthesizer] = (
    weakref.WeakKeyDictionary()
)


class SourceError(ValueError):
    pass


def tone_frames(frequency: float, amplitude: float = 0.3) -> Iterator[np.ndarray]:
    """An endless sine, phase-continuous across frames."""
    step = 2 * np.pi * frequency / NARROWBAND
    phase = 0.0
    index = np.arange(FRAME)
    while True:
        yield (np.sin(phase + step * index) * amplitude * 32767).astype(np.int16)
        phase = (phase + step * FRAME) % (2 * np.pi)


def pcm_frames(pcm: np.ndarray, loop: bool = False) -> Iterator[np.ndarray]:
    """Frames of ``pcm`` (8 kHz int16), then silence (or again from the start with ``loop``)."""
    padded = np.zeros(-(-len(pcm) // FRAME) * FRAME, dtype=np.int16)
    padded[: len(pcm)] = pcm
    frames = padded.reshape(-1, FRAME)
    while True:
        yield from frames
        if not loop:
            break
    while True:
        yield np.zeros(FRAME, dtype=np.int16)


def silence_frames() -> Iterator[np.ndarray]:
    while True:
        yield np.zeros(FRAME, dtype=np.int16)


def phone_synthesizer() -> SpeechSynthesizer:
    """The phones' synthesizer on the running loop: one per loop, as its syntheses are tasks."""
    loop = asyncio.get_running_loop()
    if loop not in _SYNTHESIZERS:
        _SYNTHESIZERS[loop] = SpeechSynthesizer(cache_bytes=SPEECH_CACHE_BYTES)
    return _SYNTHESIZERS[loop]


async def speech(text: str, language: str = "en") -> np.ndarray:
    """``text`` spoken by espeak-ng in a Calls API ``language`` (as a say action would), as
    8 kHz int16; synthesized off the event loop, and cached since test phones repeat."""
    try:
        return await phone_synthesizer().synthesize(text, resolve_voice(language))
    except (ValueError, SynthesisFailed) as error:  # UnsupportedVoice is a ValueError
        raise SourceError(str(error)) from None


class PhoneAudio:
    """The :class:`~gateway.media.port.MediaPort` of one simulated phone."""

    sample_rate = NARROWBAND

    def __init__(self) -> None:
        self._source: Iterator[np.ndarray | None] = silence_frames()
        self._heard: list[np.ndarray] = []

    def play(self, source: Iterator[np.ndarray]) -> None:
        self._source = source

    def interject(self, frames: Iterator[np.ndarray | None]) -> None:
        """Send ``frames`` first (None: silence), then what was playing resumes: keys typed
        over what the phone says. A source set meanwhile replaces both."""
        resumed = self._source

        def first_frames() -> Iterator[np.ndarray | None]:
            yield from frames
            yield from resumed

        self._source = first_frames()

    def read(self) -> np.ndarray | None:
        return next(self._source)

    def write(self, samples: np.ndarray) -> None:
        self._heard.append(samples.copy())
        if len(self._heard) > MAX_HEARD_FRAMES:
            del self._heard[: len(self._heard) - MAX_HEARD_FRAMES]

    def heard(self) -> np.ndarray:
        if not self._heard:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._heard)

    def heard_wav(self) -> bytes:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            wav.writeframes(self.heard().tobytes())
        return buffer.getvalue()
