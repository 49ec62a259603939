"""Decoding uploaded and fetched audio: WAV in every encoding the Calls API's users send (made
by the ``wave`` module and by sox, an independent encoder), MP3 made by LAME through PyAV,
each heard as the tone it holds at 8 kHz, with its duration; and everything that is not
playable refused with a message that says why."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from gateway.media import audiofile
from gateway.media.audiofile import SAMPLE_RATE, UnsupportedAudio, decode_audio
from gateway.testing.audio import dominant_frequency, tone, tone_level

needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")


def wav_bytes(pcm: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> bytes:
    """Integer PCM WAV by the standard library; ``pcm`` is interleaved when ``channels`` > 1."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def sox_wav(tmp_path: Path, *encoding: str, rate: int = 8000, channels: int = 1) -> bytes:
    """A 1.5 s WAV synthesised by sox: 440 Hz, and 1000 Hz on a second channel."""
    path = tmp_path / "sox.wav"
    tones = ["sine", "440"] + (["sine", "1000"] if channels > 1 else [])
    command = ["sox", "-n", "-r", str(rate), "-c", str(channels), *encoding, str(path)]
    subprocess.run([*command, "synth", "1.5", *tones, "gain", "-3"], check=True)
    return path.read_bytes()


def mp3_bytes(pcm: np.ndarray, rate: int, layout: str = "mono", **options: str) -> bytes:
    """MP3 encoded by libmp3lame through PyAV (``pcm`` interleaved for stereo)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3", options=options) as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.stack([left, right], axis=1).reshape(-1)


def middle(samples: np.ndarray) -> np.ndarray:
    """Without the first and last 50 ms, where an abrupt start or end is broadband."""
    return samples[400:-400]


def assert_tone(samples: np.ndarray, frequency: float, seconds: float, tolerance_ms: float):
    assert samples.dtype == np.int16 and samples.ndim == 1
    assert abs(len(samples) / SAMPLE_RATE - seconds) * 1000 <= tolerance_ms
    assert dominant_frequency(middle(samples), SAMPLE_RATE) == pytest.approx(frequency, abs=2)


# -- WAV --------------------------------------------------------------------------------------


def test_16_bit_wav_at_8k_is_its_samples() -> None:
    pcm = tone(440, 1.0, amplitude=0.5)
    decoded = decode_audio(wav_bytes(pcm, 8000))
    assert decoded.file_format == "WAV"
    assert decoded.duration_ms == 1000
    assert np.abs(decoded.samples.astype(int) - pcm).max() <= 1


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
def test_any_rate_becomes_8k(rate: int) -> None:
    decoded = decode_audio(wav_bytes(tone(440, 1.25, rate=rate), rate))
    assert decoded.duration_ms == 1250
    assert_tone(decoded.samples, 440, 1.25, tolerance_ms=20)
    assert tone_level(middle(decoded.samples), SAMPLE_RATE, 440) == pytest.approx(-10.5, abs=0.5)


def test_stereo_44k1_becomes_mono_8k_with_both_channels() -> None:
    pcm = stereo(tone(440, 2.0, rate=44100), tone(1000, 2.0, rate=44100))
    decoded = decode_audio(wav_bytes(pcm, 44100, channels=2))
    assert decoded.duration_ms == 2000
    assert abs(len(decoded.samples) - 16000) <= 160
    for frequency in (440, 1000):  # each channel averaged in: 6 dB down from its -10.5
        level = tone_level(middle(decoded.samples), SAMPLE_RATE, frequency)
        assert level == pytest.approx(-16.5, abs=0.5)


def test_nothing_above_4khz_folds_back_into_the_band() -> None:
    """6 kHz at 44.1 kHz would alias to 2 kHz at 8 kHz without the resampler's filter."""
    decoded = decode_audio(wav_bytes(tone(6000, 1.0, rate=44100, amplitude=0.9), 44100))
    assert tone_level(middle(decoded.samples), SAMPLE_RATE, 2000) < -80


@needs_sox
@pytest.mark.parametrize(
    ("encoding", "format_tag"),
    [
        (("-e", "unsigned-integer", "-b", "8"), 0x0001),
        (("-e", "signed-integer", "-b", "16"), 0x0001),
        (("-e", "signed-integer", "-b", "24"), 0xFFFE),  # sox writes WAVE_FORMAT_EXTENSIBLE
        (("-e", "signed-integer", "-b", "32"), 0xFFFE),
        (("-e", "floating-point", "-b", "32"), 0x0003),
        (("-e", "floating-point", "-b", "64"), 0x0003),
        (("-e", "mu-law"), 0x0007),
        (("-e", "a-law"), 0x0006),
    ],
    ids=["u8", "s16", "s24", "s32", "f32", "f64", "mu-law", "a-law"],
)
def test_wav_encodings_made_by_sox(
    tmp_path: Path, encoding: tuple[str, ...], format_tag: int
) -> None:
    data = sox_wav(tmp_path, *encoding, rate=22050, channels=2)
    assert struct.unpack_from("<H", data, 20)[0] == format_tag  # the encoding meant is tested
    decoded = decode_audio(data)
    assert decoded.file_format == "WAV"
    assert abs(decoded.duration_ms - 1500) <= 1
    assert abs(len(decoded.samples) / SAMPLE_RATE - 1.5) <= 0.02
    # sox's -3 dB sines, averaged: each tone at -9 dB (8-bit and G.711 a little noisier).
    for frequency in (440, 1000):
        level = tone_level(middle(decoded.samples), SAMPLE_RATE, frequency)
        assert level == pytest.approx(-9.0, abs=0.5)


@needs_sox
def test_six_channels(tmp_path: Path) -> None:
    """sox puts the two tones on alternate channels: each is in half of them."""
    decoded = decode_audio(sox_wav(tmp_path, "-b", "16", rate=48000, channels=6))
    assert abs(len(decoded.samples) / SAMPLE_RATE - 1.5) <= 0.02
    for frequency in (440, 1000):
        level = tone_level(middle(decoded.samples), SAMPLE_RATE, frequency)
        assert level == pytest.approx(-9.0, abs=0.5)


def test_chunks_before_the_data_and_an_odd_sized_chunk_are_skipped() -> None:
    plain = wav_bytes(tone(440, 0.5), 8000)
    extra = b"LIST" + struct.pack("<I", 5) + b"hello" + b"\0"  # padded to an even size
    data = plain[:36] + extra + plain[36:]
    data = data[:4] + struct.pack("<I", len(data) - 8) + data[8:]
    assert decode_audio(data).duration_ms == 500


def test_a_streamed_wav_without_sizes_plays_to_the_end() -> None:
    data = bytearray(wav_bytes(tone(440, 0.5), 8000))
    struct.pack_into("<I", data, 40, 0xFFFFFFFF)  # the data size a pipe could not fill in
    assert decode_audio(bytes(data)).duration_ms == 500


# -- MP3 --------------------------------------------------------------------------------------


def test_mp3_with_id3_tag() -> None:
    data = mp3_bytes(tone(440, 1.5, rate=44100), 44100)
    assert data[:3] == b"ID3"
    decoded = decode_audio(data)
    assert decoded.file_format == "MP3"
    assert_tone(decoded.samples, 440, 1.5, tolerance_ms=20)  # LAME's Info header: exact length


def test_mp3_without_tag_starts_with_a_frame_header() -> None:
    data = mp3_bytes(tone(1000, 1.0, rate=16000), 16000, id3v2_version="0", write_xing="0")
    assert data[0] == 0xFF and data[1] & 0xE0 == 0xE0
    decoded = decode_audio(data)
    assert decoded.file_format == "MP3"
    # No Info header says how much padding the encoder added: up to a few frames more.
    assert_tone(decoded.samples, 1000, 1.0, tolerance_ms=150)


def test_stereo_mp3_becomes_mono() -> None:
    pcm = stereo(tone(440, 1.0, rate=48000), tone(1000, 1.0, rate=48000))
    decoded = decode_audio(mp3_bytes(pcm, 48000, layout="stereo"))
    for frequency in (440, 1000):
        level = tone_level(middle(decoded.samples), SAMPLE_RATE, frequency)
        assert level == pytest.approx(-16.5, abs=1)


# -- refused ----------------------------------------------------------------------------------


def _adpcm_wav() -> bytes:
    fmt = struct.pack("<HHIIHH", 0x0002, 1, 8000, 4096, 256, 4) + b"\0" * 4
    body = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 256)
    body += b"\0" * 256
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"<html><body>Not found</body></html>", "neither WAV"),
        (b"OggS\0\2" + b"\0" * 100, "neither WAV"),
        (b"RIFF\x24\0\0\0WAVE", "no fmt chunk"),
        (wav_bytes(tone(440, 0.5), 8000)[:30], "fmt chunk is truncated"),
        (wav_bytes(tone(440, 0.5), 8000)[:36], "no data chunk"),
        (wav_bytes(tone(440, 0.5), 8000)[:1000], "truncated: its data chunk declares 8000"),
        (wav_bytes(np.zeros(0, np.int16), 8000), "holds no audio"),
        (_adpcm_wav(), "Microsoft ADPCM"),
        (b"ID3\4\0\0\0\0\0\x10" + b"\0" * 16, "MP3"),
        (b"\xff\xfb\x90\x64" + bytes(range(256)) * 4, "MP3"),
    ],
    ids=[
        "empty",
        "html",
        "ogg",
        "riff-only",
        "short-fmt",
        "no-data",
        "truncated-data",
        "zero-samples",
        "adpcm",
        "id3-no-frames",
        "mp3-sync-garbage",
    ],
)
def test_unplayable_is_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedAudio, match=message):
        decode_audio(data)


def test_truncated_mp3_keeps_what_is_there() -> None:
    """Cut mid-stream (as a stopped download would be): the frames before the cut play."""
    data = mp3_bytes(tone(440, 2.0, rate=44100), 44100)
    decoded = decode_audio(data[: len(data) // 2])
    assert 0.8 < len(decoded.samples) / SAMPLE_RATE < 1.2
    assert dominant_frequency(middle(decoded.samples), SAMPLE_RATE) == pytest.approx(440, abs=2)


def test_a_header_claiming_an_absurd_rate_is_refused_before_decoding() -> None:
    tiny = wav_bytes(np.zeros(10_000, np.int16), 8000)
    for rate in (1, 3999, 400_000):
        forged = tiny[:24] + struct.pack("<I", rate) + tiny[28:]
        with pytest.raises(UnsupportedAudio, match=f"{rate} Hz"):
            decode_audio(forged)


def test_more_than_an_hour_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audiofile, "MAX_SECONDS", 1)
    with pytest.raises(UnsupportedAudio, match="too long"):
        decode_audio(wav_bytes(np.zeros(8000 * 2, np.int16), 8000))
    with pytest.raises(UnsupportedAudio, match="too long"):
        decode_audio(mp3_bytes(np.zeros(8000 * 3, np.int16), 8000))
    assert len(decode_audio(wav_bytes(np.zeros(4000, np.int16), 8000)).samples) == 4000
