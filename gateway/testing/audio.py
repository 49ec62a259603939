"""Make and measure audio in tests: so a test can assert what a caller would have heard.

Levels are dB relative to a full-scale sine (AES17), so ``tone(f, s, amplitude=a)`` measures
20*log10(a) with both ``tone_level`` and ``rms_dbfs``.
"""

from __future__ import annotations

import io
import wave
from os import PathLike, fspath
from typing import BinaryIO

import numpy as np

from gateway.media.dtmf_tone import dtmf_samples

FULL_SCALE = 32767.0
_FLOOR_DB = -200.0  # what silence measures, rather than -inf


def tone(frequency: float, seconds: float, rate: int = 8000, amplitude: float = 0.3) -> np.ndarray:
    """A sine of ``amplitude`` (fraction of full scale) as int16."""
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(amplitude * FULL_SCALE * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def silence(seconds: float, rate: int = 8000) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.int16)


def _db(amplitude: float) -> float:
    return 20 * np.log10(amplitude) if amplitude > 0 else _FLOOR_DB


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    """The strongest frequency in Hz: Hann-windowed, zero-padded FFT, parabolic peak fit.

    Within about 0.1 Hz on a second of clean tone, and a few Hz on 100 ms.
    """
    x = np.asarray(pcm, dtype=np.float64)
    if len(x) < 4:
        raise ValueError("too few samples to find a frequency")
    size = 1 << int(np.ceil(np.log2(len(x) * 4)))  # pad: finer bins for the peak fit
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)), size))
    peak = int(np.argmax(spectrum[1:-1])) + 1
    # A Hann peak is close to a parabola in log magnitude; fit through the three top bins.
    a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
    return (peak + shift) * rate / size


def tone_level(pcm: np.ndarray, rate: int, frequency: float) -> float:
    """Level of one frequency in dBFS, e.g. to assert a tone is absent from a mix (< -40).

    A Hann-windowed single-bin DFT at exactly ``frequency`` (Goertzel's quantity), scaled so a
    sine of amplitude a reads 20*log10(a). The window keeps strong tones further than a few
    bins (rate / len(pcm) Hz each) away from leaking in; the main lobe is 4 bins wide, so
    measure the frequency that was sent, not one a few bins off.
    """
    x = np.asarray(pcm, dtype=np.float64)
    window = np.hanning(len(x))
    phase = np.exp(-2j * np.pi * frequency * np.arange(len(x)) / rate)
    amplitude = 2 * abs(np.dot(x * window, phase)) / window.sum()
    return _db(amplitude / FULL_SCALE)


def rms_dbfs(pcm: np.ndarray) -> float:
    """RMS level in dBFS, where a full-scale sine is 0 dB (so a square wave reads +3 dB)."""
    x = np.asarray(pcm, dtype=np.float64)
    rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    return _db(rms * np.sqrt(2) / FULL_SCALE)


def _file(f: str | PathLike | BinaryIO) -> str | BinaryIO:
    """``wave`` in Python 3.11 opens str paths but takes anything else for a file object."""
    return fspath(f) if isinstance(f, PathLike) else f


def read_wav(source: str | PathLike | bytes | BinaryIO) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV -> (int16 mono, sample rate); several channels are averaged."""
    with wave.open(_file(io.BytesIO(source) if isinstance(source, bytes) else source), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":
            raise ValueError("only 16-bit linear PCM WAV is read")
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if channels > 1:
        data = np.rint(data.reshape(-1, channels).mean(axis=1))
    return data.astype(np.int16), rate


def write_wav(target: str | PathLike | BinaryIO, pcm: np.ndarray, rate: int) -> None:
    """int16 mono PCM -> a 16-bit WAV file (a path or a writable binary file)."""
    with wave.open(_file(target), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


def dtmf(
    digits: str,
    on_ms: float = 70,
    off_ms: float = 70,
    rate: int = 8000,
    amplitude: float = 0.2,
    twist_db: float = 0.0,
    deviation: float = 0.0,
) -> np.ndarray:
    """Keyed DTMF as int16: each digit's two tones for ``on_ms``, then ``off_ms`` of silence.

    ``amplitude`` is the row tone's; the column tone is ``twist_db`` louder (negative: quieter),
    and both frequencies are off by the fraction ``deviation``, to test a detector's limits.
    The tones are the gateway's own (``dtmf_samples``), so what is tested is what it sends.
    """
    gap = silence(off_ms / 1000, rate)
    parts = []
    for digit in digits:
        key = dtmf_samples(
            digit, on_ms, _db(amplitude), rate, twist_db=twist_db, deviation=deviation
        )
        parts += [key, gap]
    return np.concatenate(parts) if parts else silence(0, rate)
