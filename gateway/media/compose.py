"""Composing recordings: several WAV files (a participant's each), placed on one timeline by
their start offsets, summed into one file or each put on its own channel.

Read and written block by block, so that composing hours of audio holds seconds of it in
memory; written to a temporary file and renamed, so that a composed file is whole or absent.
"""

from __future__ import annotations

import contextlib
import os
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.media.frame import NARROWBAND
from gateway.media.recorder import SAMPLE_WIDTH, WavWriter

_BLOCK = 10 * NARROWBAND  # samples per channel composed at a time


@dataclass(frozen=True)
class Part:
    """One mono 8 kHz file, starting ``offset`` samples into the composed file, on
    ``channel`` (0 when everything is summed into one)."""

    path: Path
    offset: int
    channel: int = 0


def compose_files(parts: Sequence[Part], target: Path, channels: int = 1) -> int:
    """Write ``target``: the parts summed (saturating) per channel. Returns its size in bytes.
    Raises OSError, or ValueError for a part that is not 8 kHz 16-bit mono."""
    temporary = target.with_name(target.name + ".part")
    readers: list[tuple[Part, wave.Wave_read]] = []
    try:
        for part in parts:
            reader = wave.open(str(part.path), "rb")  # noqa: SIM115 - closed below
            readers.append((part, reader))
            if (reader.getframerate(), reader.getsampwidth(), reader.getnchannels()) != (
                NARROWBAND,
                SAMPLE_WIDTH,
                1,
            ):
                raise ValueError(f"{part.path.name} is not 8 kHz 16-bit mono")
        length = max((p.offset + r.getnframes() for p, r in readers), default=0)
        writer = WavWriter(temporary, channels)
        try:
            for start in range(0, length, _BLOCK):
                size = min(_BLOCK, length - start)
                block = np.zeros((size, channels), dtype=np.int32)
                for part, reader in readers:
                    _add(block, start, part, reader)
                np.clip(block, -32768, 32767, out=block)
                writer.write(block.astype("<i2").tobytes())
        finally:
            total = writer.close()
        os.replace(temporary, target)
        return total
    finally:
        for _, reader in readers:
            reader.close()
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _add(block: np.ndarray, start: int, part: Part, reader: wave.Wave_read) -> None:
    """Add the part's samples that fall in ``block`` (which begins ``start`` samples in)."""
    first = max(start, part.offset)
    last = min(start + len(block), part.offset + reader.getnframes())
    if first >= last:
        return
    reader.setpos(first - part.offset)
    samples = np.frombuffer(reader.readframes(last - first), dtype="<i2")
    block[first - start : first - start + len(samples), part.channel] += samples
