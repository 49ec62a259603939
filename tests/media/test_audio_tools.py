"""Audio tools measure what they claim; resampling keeps tones, kills aliases, never clicks."""

from __future__ import annotations

import io
import wave
from itertools import permutations

import numpy as np
import pytest

from gateway.media.frame import samples_per_frame
from gateway.media.resample import RATES, BatchResampler, Resampler, _design
from gateway.testing.audio import (
    dominant_frequency,
    read_wav,
    rms_dbfs,
    silence,
    tone,
    tone_level,
    write_wav,
)

PAIRS = list(permutations(RATES, 2))


def db(amplitude: float) -> float:
    return 20 * np.log10(amplitude)


# --- generators and meters --------------------------------------------------------------------


def test_tone_and_silence() -> None:
    sent = tone(440, 0.5, 16000, amplitude=0.5)
    assert sent.dtype == np.int16 and len(sent) == 8000
    assert abs(int(np.abs(sent).max()) - 16384) < 2
    assert np.array_equal(silence(0.02, 8000), np.zeros(160, np.int16))


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
@pytest.mark.parametrize("frequency", [350, 440, 1000, 1234.5, 3000])
def test_dominant_frequency_within_2hz_on_a_second(rate: int, frequency: float) -> None:
    assert abs(dominant_frequency(tone(frequency, 1.0, rate), rate) - frequency) < 2


def test_dominant_frequency_picks_the_stronger_tone_of_a_short_mix() -> None:
    mix = tone(697, 0.1, amplitude=0.2) + tone(1209, 0.1, amplitude=0.3)
    assert abs(dominant_frequency(mix, 8000) - 1209) < 5


def test_tone_level_reads_amplitude_in_dbfs() -> None:
    assert abs(tone_level(tone(1000, 1.0, amplitude=0.3), 8000, 1000) - db(0.3)) < 0.1
    assert abs(tone_level(tone(1000, 0.1, amplitude=1.0), 8000, 1000)) < 0.1


def test_tone_level_finds_a_tone_absent_from_a_mix() -> None:
    dial = tone(350, 1.0, amplitude=0.3) + tone(440, 1.0, amplitude=0.3)
    assert abs(tone_level(dial, 8000, 440) - db(0.3)) < 0.2
    assert tone_level(dial, 8000, 1000) < -80
    assert tone_level(dial, 8000, 500) < -40  # 60 Hz from a loud tone still reads absent
    assert tone_level(silence(1.0), 8000, 1000) == -200.0


def test_rms_dbfs_is_relative_to_a_full_scale_sine() -> None:
    assert abs(rms_dbfs(tone(1000, 1.0, amplitude=0.3)) - db(0.3)) < 0.05
    assert abs(rms_dbfs(tone(1000, 1.0, amplitude=1.0))) < 0.05
    assert rms_dbfs(silence(0.1)) == -200.0


def test_wav_round_trips_through_paths_files_and_bytes(tmp_path) -> None:
    pcm = tone(1000, 0.1, 16000)
    write_wav(tmp_path / "a.wav", pcm, 16000)
    for source in (tmp_path / "a.wav", str(tmp_path / "a.wav"), (tmp_path / "a.wav").read_bytes()):
        got, rate = read_wav(source)
        assert rate == 16000 and got.dtype == np.int16 and np.array_equal(got, pcm)
    buffer = io.BytesIO()
    write_wav(buffer, pcm, 8000)
    buffer.seek(0)
    assert read_wav(buffer)[1] == 8000


def test_read_wav_mixes_stereo_down_and_refuses_8_bit() -> None:
    def wav(channels: int, width: int, frames: bytes) -> bytes:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(width)
            out.setframerate(8000)
            out.writeframes(frames)
        return buffer.getvalue()

    stereo = np.array([100, 300, -100, -300], dtype="<i2").tobytes()
    assert read_wav(wav(2, 2, stereo))[0].tolist() == [200, -200]
    with pytest.raises(ValueError, match="16-bit"):
        read_wav(wav(1, 1, b"\x80\x80"))


# --- resampling -------------------------------------------------------------------------------


def stream(resampler: Resampler, pcm: np.ndarray) -> np.ndarray:
    """Push PCM through one 20 ms frame at a time, as the media plane does."""
    size = samples_per_frame(resampler.from_rate)
    return np.concatenate([resampler.process(f) for f in pcm.reshape(-1, size)])


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_resampling_keeps_a_1khz_tone(src: int, dst: int) -> None:
    resampler = Resampler(src, dst)
    out = stream(resampler, tone(1000, 1.0, src))
    assert len(out) == dst and out.dtype == np.int16
    settled = out[dst // 20 :]
    assert abs(dominant_frequency(settled, dst) - 1000) < 1
    assert abs(rms_dbfs(settled) - db(0.3)) < 0.1


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_resampling_delay_is_the_filter_group_delay(src: int, dst: int) -> None:
    resampler = Resampler(src, dst)
    impulse = np.zeros(samples_per_frame(src) * 3, dtype=np.int16)
    impulse[0] = 30000
    assert int(np.argmax(stream(resampler, impulse))) == round(resampler.delay * dst)
    assert 0.001 < resampler.delay < 0.005


def test_8k_16k_8k_keeps_the_tone_and_adds_no_image() -> None:
    up = stream(Resampler(8000, 16000), tone(1000, 1.0))
    assert tone_level(up[800:], 16000, 7000) < -70  # the 1 kHz image at 8k - 1k
    back = stream(Resampler(16000, 8000), up)
    assert abs(dominant_frequency(back[800:], 8000) - 1000) < 1
    assert abs(tone_level(back[800:], 8000, 1000) - db(0.3)) < 0.1


@pytest.mark.parametrize(("src", "dst", "frequency"), [(16000, 8000, 6000), (48000, 16000, 9000)])
def test_downsampling_removes_tones_above_the_new_band(src: int, dst: int, frequency: int) -> None:
    out = stream(Resampler(src, dst), tone(frequency, 1.0, src))
    # >= 40 dB required; the filter gives more than 80, which rounds to silence.
    assert rms_dbfs(out[dst // 20 :]) < db(0.3) - 60


def test_the_telephone_band_passes_flat() -> None:
    for frequency in (300, 3400):
        out = stream(Resampler(8000, 48000), tone(frequency, 0.5))
        assert abs(tone_level(out[2400:], 48000, frequency) - db(0.3)) < 0.1


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (16000, 24000)])
def test_frames_join_without_clicks(src: int, dst: int) -> None:
    """Frame by frame equals filtering the whole signal in one go (an independent reference)."""
    pcm = (tone(700, 0.5, src, 0.4) + tone(1900, 0.5, src, 0.4)).astype(np.int16)
    framed = stream(Resampler(src, dst), pcm)
    up, down, taps = _design(src, dst)
    stuffed = np.zeros(len(pcm) * up)
    stuffed[::up] = pcm
    whole = np.convolve(stuffed, taps)[: len(stuffed) : down]
    assert np.abs(framed - np.rint(whole)).max() <= 1
    # And no sample-to-sample jump beyond what two 0.4 tones can slew.
    slew = 2 * np.pi * 0.4 * 32767 * (700 + 1900) / dst
    assert np.abs(np.diff(framed.astype(np.int32))).max() <= slew * 1.01


def test_odd_chunk_sizes_give_the_same_stream() -> None:
    pcm = tone(1000, 0.3, 16000)
    whole = Resampler(16000, 24000).process(pcm)
    chunked = Resampler(16000, 24000)
    pieces = [chunked.process(pcm[i : i + 2]) for i in range(0, 100, 2)]  # the 2-sample block
    pieces.append(chunked.process(pcm[100:]))
    assert np.array_equal(np.concatenate(pieces), whole)
    with pytest.raises(ValueError, match="multiple of 2"):
        Resampler(16000, 24000).process(pcm[:3])


def test_batch_rows_keep_their_own_state() -> None:
    legs = [tone(f, 0.2) for f in (400, 1000, 2500)]
    singles = [stream(Resampler(8000, 16000), leg) for leg in legs]
    batch = BatchResampler(8000, 16000, rows=3)
    frames = np.stack(legs).reshape(3, -1, 160)
    out = np.concatenate([batch.process(frames[:, i]) for i in range(frames.shape[1])], axis=1)
    assert np.array_equal(out, np.stack(singles))


def test_batch_processes_a_subset_of_rows_and_resets_one() -> None:
    batch = BatchResampler(8000, 16000, rows=4)
    loud = np.tile(tone(1000, 0.02), (4, 1))
    batch.process(loud)
    rows = np.array([1, 3])
    batch.reset(3)
    out = batch.process(np.zeros((2, 160), np.int16), rows=rows)
    assert np.abs(out[0]).max() > 1000  # row 1 still rings out its history
    assert not out[1].any()  # row 3 starts again from silence
    fresh = batch.process(np.zeros((1, 160), np.int16), rows=np.array([0]))
    assert np.abs(fresh).max() > 1000  # row 0 was untouched by the subset call


def test_same_rate_is_a_copy_and_bad_rates_are_refused() -> None:
    resampler = Resampler(16000, 16000)
    pcm = tone(1000, 0.02, 16000)
    assert np.array_equal(resampler.process(pcm), pcm) and resampler.delay == 0
    with pytest.raises(ValueError, match="44100"):
        Resampler(44100, 8000)
