"""Audio files (uploaded, or fetched from a URL) decoded to what the media plane plays: int16
mono at 8 kHz.

The format is told by the content, never by a name: a RIFF/WAVE header, or MP3 by its ID3 tag
or an MPEG audio frame header. WAV is parsed here (PCM 8/16/24/32-bit, IEEE float, µ-law and
A-law, plain or WAVE_FORMAT_EXTENSIBLE; µ-law and A-law through the G.711 tables of
``codecs.py``); MP3 is decoded by FFmpeg through PyAV. Channels are averaged, then one
FFmpeg resampler (libswresample, any rate to 8 kHz, filtered against aliasing) brings every
format to 8 kHz: ``resample.py`` is the streaming resampler of the RTP rates (8/16/24/48 kHz)
and files come at any rate (44.1, 22.05, 11.025 kHz...).

Decoding is CPU-bound (a minute of 44.1 kHz stereo takes about 0.25 s as WAV and 0.4 s as
MP3 on one core here): callers on the event loop run :func:`decode_audio` in a thread
(``asyncio.to_thread``).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import av
import numpy as np

from gateway.media.codecs import decode_alaw, decode_ulaw

SAMPLE_RATE = 8000
# What a file may claim and hold: a header saying 1 Hz would make a small upload decode to
# gigabytes at 8 kHz, and a low-bitrate MP3 hours of audio. An hour is about 57 MB decoded.
MIN_RATE, MAX_RATE = 4000, 384_000
MAX_SECONDS = 3600

_PCM, _FLOAT, _ALAW, _ULAW, _EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
_TAG_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MPEG layer 3",
}
# A data chunk size of 0 or 0xFFFFFFFF: written by streaming encoders that could not seek
# back to fill it in; the data runs to the end of the file.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


class UnsupportedAudio(ValueError):
    """Bytes that are not audio we can play; the message says which format and why."""


@dataclass(frozen=True)
class DecodedAudio:
    file_format: str  # "WAV" or "MP3"
    samples: np.ndarray  # int16 mono at 8000 Hz
    duration_ms: int


def decode_audio(data: bytes) -> DecodedAudio:
    """WAV or MP3 bytes -> 8 kHz int16 mono; raises :class:`UnsupportedAudio`. CPU-bound."""
    if not data:
        raise UnsupportedAudio("The file is empty.")
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        channels, rate = _wav(data)
        file_format = "WAV"
    elif _looks_like_mp3(data):
        channels, rate = _mp3(data)
        file_format = "MP3"
    else:
        raise UnsupportedAudio(
            "The file is neither WAV (no RIFF/WAVE header) nor MP3 (no ID3 tag or MPEG audio "
            "frame header): only WAV and MP3 files can be played."
        )
    samples = _mono_8k(channels.mean(axis=0, dtype=np.float32), rate)
    if len(samples) == 0:
        raise UnsupportedAudio(f"The {file_format} file holds no audio.")
    return DecodedAudio(file_format, samples, round(channels.shape[1] * 1000 / rate))


# -- WAV ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _WavFormat:
    tag: int
    channels: int
    rate: int
    block_align: int
    bits: int

    @property
    def container(self) -> int:
        """Bytes per sample as stored (a 20-bit sample sits in 3)."""
        return self.block_align // self.channels


def _wav(data: bytes) -> tuple[np.ndarray, int]:
    """(float32 channels x samples in [-1, 1], sample rate) of a RIFF/WAVE file."""
    fmt: _WavFormat | None = None
    position = 12
    while position + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, position)
        body = position + 8
        if chunk_id == b"fmt ":
            fmt = _wav_format(data[body : body + size])
        elif chunk_id == b"data":
            if fmt is None:
                raise UnsupportedAudio("The WAV file has its data before its fmt chunk.")
            if size in _UNKNOWN_SIZES:
                size = len(data) - body
            elif body + size > len(data):
                raise UnsupportedAudio(
                    f"The WAV file is truncated: its data chunk declares {size} bytes, "
                    f"{len(data) - body} are there."
                )
            _check_length(size // fmt.block_align, fmt.rate, "WAV")
            return _wav_samples(fmt, data[body : body + size]), fmt.rate
        position = body + size + (size & 1)  # chunks are padded to even sizes
    missing = "data" if fmt is not None else "fmt"
    raise UnsupportedAudio(f"The WAV file is truncated or malformed: it has no {missing} chunk.")


def _wav_format(chunk: bytes) -> _WavFormat:
    if len(chunk) < 16:
        raise UnsupportedAudio("The WAV file's fmt chunk is truncated.")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", chunk)
    if tag == _EXTENSIBLE:
        if len(chunk) < 26:
            raise UnsupportedAudio("The WAV file's extensible fmt chunk is truncated.")
        tag = struct.unpack_from("<H", chunk, 24)[0]  # the first two bytes of the sub-format GUID
    fmt = _WavFormat(tag, channels, rate, block_align, bits)
    if tag not in (_PCM, _FLOAT, _ALAW, _ULAW):
        name = _TAG_NAMES.get(tag, f"format tag {tag:#06x}")
        raise UnsupportedAudio(
            f"The WAV file is encoded as {name}: only PCM, IEEE float, µ-law and A-law WAV "
            "files can be played."
        )
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UnsupportedAudio(
            f"The WAV file's sample rate is {rate} Hz: only {MIN_RATE}-{MAX_RATE} Hz can be played."
        )
    if channels == 0 or block_align == 0 or block_align % channels:
        raise UnsupportedAudio(
            f"The WAV file's fmt chunk is invalid: {channels} channels, {rate} Hz, "
            f"{block_align}-byte blocks."
        )
    allowed = {_PCM: (1, 2, 3, 4), _FLOAT: (4, 8), _ALAW: (1,), _ULAW: (1,)}[tag]
    if fmt.container not in allowed:
        raise UnsupportedAudio(
            f"The WAV file has {bits}-bit samples in {fmt.container} bytes, which its encoding "
            f"(format tag {tag}) does not allow."
        )
    return fmt


def _wav_samples(fmt: _WavFormat, body: bytes) -> np.ndarray:
    """The data chunk as float32 (channels x samples); a partial last block is dropped."""
    frames = len(body) // fmt.block_align
    raw = np.frombuffer(body, dtype=np.uint8, count=frames * fmt.block_align)
    width = fmt.container
    if fmt.tag == _ULAW:
        values = decode_ulaw(raw) / np.float32(32768)
    elif fmt.tag == _ALAW:
        values = decode_alaw(raw) / np.float32(32768)
    elif fmt.tag == _FLOAT:
        values = np.frombuffer(raw.tobytes(), dtype="<f4" if width == 4 else "<f8")
        values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    elif width == 1:  # 8-bit WAV is unsigned
        values = (raw.astype(np.float32) - 128) / 128
    elif width == 3:
        triples = raw.reshape(-1, 3).astype(np.int32)
        ints = (triples[:, 0] << 8) | (triples[:, 1] << 16) | (triples[:, 2] << 24)
        values = ints / np.float32(2**31)
    else:
        values = np.frombuffer(raw.tobytes(), dtype=f"<i{width}") / np.float32(2 ** (8 * width - 1))
    return np.clip(values.astype(np.float32), -1.0, 1.0).reshape(-1, fmt.channels).T


def _check_length(frames: int, rate: int, file_format: str) -> None:
    if frames > MAX_SECONDS * rate:
        raise UnsupportedAudio(
            f"The {file_format} file lasts more than {MAX_SECONDS // 60} minutes: it is too long "
            "to play."
        )


# -- MP3 ------------------------------------------------------------------------------------


def _looks_like_mp3(data: bytes) -> bool:
    """An ID3v2 tag, or a valid MPEG audio frame header at the start."""
    if data[:3] == b"ID3":
        return True
    if len(data) < 4:
        return False
    header = int.from_bytes(data[:4], "big")
    sync = header >> 21 == 0x7FF
    version, layer = (header >> 19) & 3, (header >> 17) & 3  # version 1 is reserved
    bitrate, rate = (header >> 12) & 0xF, (header >> 10) & 3
    return sync and version != 1 and layer != 0 and bitrate != 0xF and rate != 3


def _mp3(data: bytes) -> tuple[np.ndarray, int]:
    """(float32 channels x samples, sample rate) decoded by FFmpeg."""
    parts: list[np.ndarray] = []
    rate = 0
    try:
        with av.open(io.BytesIO(data), format="mp3") as container:
            if not container.streams.audio:
                raise UnsupportedAudio("The MP3 file has no audio stream.")
            decoded = 0
            for frame in container.decode(audio=0):
                rate = frame.sample_rate
                decoded += frame.samples
                _check_length(decoded, rate, "MP3")  # while decoding: stop at the limit
                parts.append(_planar_float(frame))
    except av.FFmpegError as error:
        raise UnsupportedAudio(f"The MP3 file cannot be decoded: {error}.") from None
    if not parts:
        raise UnsupportedAudio("The MP3 file holds no audio frames (empty or truncated).")
    return np.concatenate(parts, axis=1), rate


def _planar_float(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame as float32 (channels x samples), whatever FFmpeg's sample format."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    return (array / np.float32(2 ** (8 * array.dtype.itemsize - 1))).astype(np.float32)


# -- to the media plane's rate ----------------------------------------------------------------


def _mono_8k(mono: np.ndarray, rate: int) -> np.ndarray:
    """float32 mono at ``rate`` -> int16 at 8 kHz (FFmpeg's resampler, saturating)."""
    if len(mono) == 0:
        return np.zeros(0, dtype=np.int16)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = rate
    out = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.int16)
