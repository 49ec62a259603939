"""RTP audio codecs: G.711 as numpy lookup tables over whole batches, G.722 and Opus via PyAV.

A tick encodes or decodes every leg that uses one codec in one call: ``codec.encode_batch``
and ``codec.decode_batch`` over a 2-D int16 array (one row per leg). G.711 has no state, so
one shared instance does a batch as a single table lookup. G.722 and Opus carry state between
packets, so each leg owns an encoder and a decoder made by ``codec.new_encoder()`` /
``codec.new_decoder()``; their batch calls loop over those per-leg objects (FFmpeg does the
work, the loop is the only Python per leg). The interface is the same either way, so the tick
never asks which kind it has.
"""

from __future__ import annotations

import fractions
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

import av
import numpy as np

from gateway.media.frame import samples_per_frame
from gateway.media.resample import Resampler


class CodecUnavailable(LookupError):
    """No such codec in the registry, or this PyAV/FFmpeg build lacks it."""


class Encoder(Protocol):
    def encode(self, samples: np.ndarray) -> bytes:
        """One frame of int16 PCM at the codec's ``sample_rate`` -> one RTP payload."""
        ...


class Decoder(Protocol):
    def decode(self, payload: bytes) -> np.ndarray:
        """One RTP payload -> int16 PCM at the codec's ``sample_rate``."""
        ...


class Codec(ABC):
    """An RTP audio format: what the SDP names, and how to turn frames into payloads."""

    name: str
    payload_type: int
    clock_rate: int  # the RTP timestamp clock, as in the rtpmap
    sample_rate: int  # the PCM rate frames are given and returned at
    channels: int = 1  # as in the rtpmap; PCM is always mono
    batchable = False  # one instance codes any legs' rows: no state per leg (G.711)

    @property
    def timestamp_step(self) -> int:
        """RTP timestamp ticks per 20 ms frame (G.722 ticks at 8 kHz while sampling at 16)."""
        return samples_per_frame(self.clock_rate)

    @abstractmethod
    def new_encoder(self) -> Encoder: ...

    @abstractmethod
    def new_decoder(self) -> Decoder: ...

    def encode_batch(
        self, frames: np.ndarray, encoders: Sequence[Encoder] | None = None
    ) -> list[bytes]:
        """Rows of ``frames`` (legs x samples) -> one payload per row, via each leg's encoder."""
        if encoders is None or len(encoders) != len(frames):
            raise ValueError(f"{self.name} keeps state per leg: pass one encoder per row")
        return [encoder.encode(row) for encoder, row in zip(encoders, frames, strict=True)]

    def decode_batch(
        self, payloads: Sequence[bytes], decoders: Sequence[Decoder] | None = None
    ) -> np.ndarray:
        """One payload per leg -> rows of PCM (legs x samples); all must decode to one length."""
        if decoders is None or len(decoders) != len(payloads):
            raise ValueError(f"{self.name} keeps state per leg: pass one decoder per payload")
        rows = [decoder.decode(p) for decoder, p in zip(decoders, payloads, strict=True)]
        if not rows:
            return np.zeros((0, samples_per_frame(self.sample_rate)), dtype=np.int16)
        return np.stack(rows)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}/{self.clock_rate} pt={self.payload_type}>"


# --- G.711 ------------------------------------------------------------------------------------
# The tables follow the classic Sun reference (g711.c), which is what audioop and most telephony
# stacks implement, so encoded bytes match them exactly. µ-law negates negative input in two's
# complement (-1 encodes as 0x7E); ITU-T G.191's reference uses one's complement there (0x7F).

_ALL_INT16 = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)  # by bit pattern
_ALL_CODES = np.arange(256, dtype=np.int32)


def _ulaw_encode_table() -> np.ndarray:
    x = _ALL_INT16 >> 2  # 14-bit
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), 8159) + 33  # clip, then add the bias
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), mag)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF))
    return (code ^ mask).astype(np.uint8)


def _alaw_encode_table() -> np.ndarray:
    x = _ALL_INT16 >> 3  # 13-bit
    mask = np.where(x < 0, 0x55, 0xD5)
    mag = np.where(x < 0, -x - 1, x)
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), mag)
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> shift) & 0xF))
    return (code ^ mask).astype(np.uint8)


def _ulaw_decode_table() -> np.ndarray:
    u = ~_ALL_CODES & 0xFF
    t = (((u & 0xF) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    a = _ALL_CODES ^ 0x55
    seg = (a & 0x70) >> 4
    t = ((a & 0xF) << 4) + np.where(seg == 0, 8, 0x108)
    t = t << np.maximum(seg - 1, 0)
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW_ENCODE = _ulaw_encode_table()
_ALAW_ENCODE = _alaw_encode_table()
_ULAW_DECODE = _ulaw_decode_table()
_ALAW_DECODE = _alaw_decode_table()


def encode_ulaw(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM of any shape -> µ-law codes (uint8, same shape)."""
    return _ULAW_ENCODE.take(np.asarray(pcm, dtype=np.int16).view(np.uint16))


def decode_ulaw(codes: np.ndarray) -> np.ndarray:
    """µ-law codes (uint8, any shape) -> int16 PCM (same shape)."""
    return _ULAW_DECODE.take(np.asarray(codes, dtype=np.uint8))


def encode_alaw(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM of any shape -> A-law codes (uint8, same shape)."""
    return _ALAW_ENCODE.take(np.asarray(pcm, dtype=np.int16).view(np.uint16))


def decode_alaw(codes: np.ndarray) -> np.ndarray:
    """A-law codes (uint8, any shape) -> int16 PCM (same shape)."""
    return _ALAW_DECODE.take(np.asarray(codes, dtype=np.uint8))


class G711(Codec):
    """PCMU or PCMA: stateless, so one instance serves every leg and is its own coder."""

    clock_rate = sample_rate = 8000
    batchable = True

    def __init__(
        self, name: str, payload_type: int, encode_table: np.ndarray, decode_table: np.ndarray
    ) -> None:
        self.name = name
        self.payload_type = payload_type
        self._encode_table = encode_table
        self._decode_table = decode_table

    def _lookup_codes(self, pcm: np.ndarray) -> np.ndarray:
        # take is about twice as fast as fancy indexing for a table lookup, and the method
        # skips np.take's Python-level dispatch (per leg and tick).
        return self._encode_table.take(np.asarray(pcm, dtype=np.int16).view(np.uint16))

    def new_encoder(self) -> G711:
        return self

    def new_decoder(self) -> G711:
        return self

    def encode(self, samples: np.ndarray) -> bytes:
        return self._lookup_codes(samples).tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        return self._decode_table.take(np.frombuffer(payload, dtype=np.uint8))

    def encode_batch(
        self, frames: np.ndarray, encoders: Sequence[Encoder] | None = None
    ) -> list[bytes]:
        """All rows in one table lookup; ``encoders`` is accepted for symmetry and ignored."""
        codes = self._lookup_codes(frames)
        if codes.ndim != 2 or not codes.size:
            return [row.tobytes() for row in codes]
        data, size = codes.tobytes(), codes.shape[1]  # slicing bytes is cheaper than per-row
        return [data[start : start + size] for start in range(0, len(data), size)]

    def decode_batch(
        self, payloads: Sequence[bytes], decoders: Sequence[Decoder] | None = None
    ) -> np.ndarray:
        """Equal-length payloads -> rows of PCM in one lookup; ``decoders`` is ignored."""
        if not payloads:
            return np.zeros((0, samples_per_frame(self.sample_rate)), dtype=np.int16)
        size = len(payloads[0])
        if any(len(p) != size for p in payloads):
            raise ValueError("a batch decodes payloads of one length; split by packet time")
        codes = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(len(payloads), size)
        return self._decode_table.take(codes)


PCMU = G711("PCMU", 0, _ULAW_ENCODE, _ULAW_DECODE)
PCMA = G711("PCMA", 8, _ALAW_ENCODE, _ALAW_DECODE)


# --- PyAV-backed codecs -------------------------------------------------------------------------


def _context(names: Sequence[str], mode: str, sample_rate: int) -> av.CodecContext:
    """An FFmpeg codec context for the first of ``names`` this build has (mono s16)."""
    name = next((n for n in names if n in av.codecs_available), None)
    if name is None:
        kind = "encoder" if mode == "w" else "decoder"
        raise CodecUnavailable(f"this PyAV/FFmpeg build has no {' or '.join(names)} {kind}")
    try:
        ctx = av.CodecContext.create(name, mode)
    except ValueError as exc:  # listed, but only the other direction is built
        raise CodecUnavailable(f"PyAV cannot open {name!r} in mode {mode!r}: {exc}") from exc
    ctx.sample_rate = sample_rate
    ctx.layout = "mono"
    ctx.format = "s16"
    if mode == "w":
        ctx.time_base = fractions.Fraction(1, sample_rate)
    return ctx


def _pcm(frames: list[av.AudioFrame]) -> np.ndarray:
    """Decoded FFmpeg frames (s16, or float from decoders that ignore the request) -> int16."""
    parts = []
    for frame in frames:
        data = frame.to_ndarray().reshape(-1)
        if data.dtype != np.int16:
            data = np.clip(np.rint(data * 32768.0), -32768, 32767).astype(np.int16)
        parts.append(data)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


class _AVEncoder:
    """One leg's FFmpeg encoder: 20 ms of PCM in, one packet out."""

    def __init__(self, ctx: av.CodecContext, sample_rate: int) -> None:
        self._ctx = ctx
        self._rate = sample_rate
        self._pts = 0

    def encode(self, samples: np.ndarray) -> bytes:
        if len(samples) != samples_per_frame(self._rate):
            # Any other size would be buffered or split by FFmpeg: not one packet per call.
            raise ValueError(f"encode one 20 ms frame ({samples_per_frame(self._rate)} samples)")
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1),
            format="s16",
            layout="mono",
        )
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += frame.samples
        return b"".join(bytes(packet) for packet in self._ctx.encode(frame))


class _AVDecoder:
    """One leg's FFmpeg decoder, resampling when FFmpeg only decodes at another rate."""

    def __init__(self, ctx: av.CodecContext, resampler: Resampler | None = None) -> None:
        self._ctx = ctx
        self._resampler = resampler

    def decode(self, payload: bytes) -> np.ndarray:
        pcm = _pcm(self._ctx.decode(av.Packet(payload)))
        return self._resampler.process(pcm) if self._resampler else pcm


class G722(Codec):
    """G.722 (PT 9): 16 kHz PCM, but an 8 kHz RTP clock by RFC 3551's historic mistake."""

    name = "G722"
    payload_type = 9
    clock_rate = 8000
    sample_rate = 16000

    def new_encoder(self) -> Encoder:
        return _AVEncoder(_context(["g722"], "w", self.sample_rate), self.sample_rate)

    def new_decoder(self) -> Decoder:
        return _AVDecoder(_context(["g722"], "r", self.sample_rate))


class Opus(Codec):
    """Opus (dynamic PT, 48 kHz RTP clock, rtpmap says /2) sending mono 20 ms frames.

    PCM is 48 kHz or 16 kHz. libopus encodes 16 kHz directly; FFmpeg always decodes at 48 kHz,
    so a 16 kHz decoder adds a 3:1 resampler (and its latency, ``Resampler.delay``).
    """

    name = "opus"
    clock_rate = 48000
    channels = 2

    def __init__(
        self, payload_type: int = 111, sample_rate: int = 48000, bit_rate: int = 32000
    ) -> None:
        if sample_rate not in (16000, 48000):
            raise ValueError("Opus PCM here is 16000 or 48000 Hz")
        self.payload_type = payload_type
        self.sample_rate = sample_rate
        self.bit_rate = bit_rate

    def new_encoder(self) -> Encoder:
        ctx = _context(["libopus"], "w", self.sample_rate)
        ctx.bit_rate = self.bit_rate
        ctx.options = {"application": "voip", "frame_duration": "20"}
        return _AVEncoder(ctx, self.sample_rate)

    def new_decoder(self) -> Decoder:
        ctx = _context(["libopus", "opus"], "r", 48000)
        resampler = Resampler(48000, self.sample_rate) if self.sample_rate != 48000 else None
        return _AVDecoder(ctx, resampler)


# --- registry -----------------------------------------------------------------------------------

_STATIC = {("pcmu", 8000, 1): PCMU, ("pcma", 8000, 1): PCMA, ("g722", 8000, 1): G722()}


def codec_for(
    name: str,
    clock_rate: int,
    channels: int = 1,
    *,
    payload_type: int | None = None,
    sample_rate: int | None = None,
) -> Codec:
    """The codec for an SDP rtpmap entry (``PCMU/8000``, ``opus/48000/2``), case-insensitively.

    ``payload_type`` is the SDP's number for dynamic formats (Opus); ``sample_rate`` picks
    Opus's PCM rate. Unknown formats raise ``CodecUnavailable``.
    """
    key = (name.lower(), clock_rate, channels)
    if key in _STATIC:
        return _STATIC[key]
    if key[:2] == ("opus", 48000) and channels in (1, 2):
        return Opus(payload_type if payload_type is not None else 111, sample_rate or 48000)
    raise CodecUnavailable(f"no codec for {name}/{clock_rate}/{channels}")
