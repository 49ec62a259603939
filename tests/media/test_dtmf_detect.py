"""In-band DTMF detection: the Q.24-style limits hold, held and repeated digits count right,
codecs and noise do not hide digits, and speech does not make them up."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from gateway.media.codecs import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from gateway.media.dtmf_detect import DtmfDetector, DtmfTone
from gateway.media.tts import SpeechSynthesizer
from gateway.media.voices import Voice
from gateway.testing.audio import dtmf

RATE = 8000
FRAME = 160
SEQUENCE = "123A456B789C*0#D"
OFFSETS = range(0, 240, 17)  # tone starts at many phases of the frame and block grid


def detect(*legs: np.ndarray) -> list[DtmfTone]:
    """Run equal-length-padded legs (one row each) through one detector, frame by frame."""
    size = -(-max(map(len, legs)) // FRAME) * FRAME + 2 * FRAME  # room for digits to end
    rows = np.zeros((len(legs), size), np.int16)
    for row, pcm in zip(rows, legs, strict=True):
        row[: len(pcm)] = pcm
    detector, keys, events = DtmfDetector(), list(range(len(legs))), []
    for at in range(0, size, FRAME):
        events += detector.update(keys, rows[:, at : at + FRAME])
    return events


def digits(events: list[DtmfTone], key: int = 0) -> str:
    return "".join(e.digit for e in events if e.key == key and not e.end)


def after(offset: int, pcm: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros(offset, np.int16), pcm])


def test_all_sixteen_digits_in_order() -> None:
    assert digits(detect(dtmf(SEQUENCE, on_ms=70, off_ms=70))) == SEQUENCE


@pytest.mark.parametrize("deviation", [0.015, -0.015])
def test_frequency_deviation_of_1_5_percent_is_accepted(deviation: float) -> None:
    assert digits(detect(dtmf(SEQUENCE, deviation=deviation))) == SEQUENCE


@pytest.mark.parametrize("deviation", [0.035, -0.035])
def test_frequency_deviation_of_3_5_percent_is_rejected(deviation: float) -> None:
    assert detect(dtmf(SEQUENCE, deviation=deviation)) == []


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_40_ms_digit_is_accepted(offset: int) -> None:
    assert digits(detect(after(offset, dtmf("5", on_ms=40)))) == "5"


@pytest.mark.parametrize("on_ms", [20, 23])
def test_a_digit_shorter_than_23_ms_is_rejected(on_ms: float) -> None:
    for offset in OFFSETS:
        assert detect(after(offset, dtmf("5", on_ms=on_ms))) == [], offset


def test_a_held_digit_is_reported_once_with_its_start_and_duration() -> None:
    for offset in OFFSETS:
        events = detect(after(offset, dtmf("7", on_ms=500)))
        assert [(e.digit, e.end) for e in events] == [("7", False), ("7", True)], offset
        start, end = events
        assert abs(start.start - offset) <= 8 * RATE // 1000  # within 8 ms
        assert end.start == start.start
        assert abs(end.duration - 500 * RATE // 1000) <= 12 * RATE // 1000  # within 12 ms


def test_the_same_digit_after_a_40_ms_pause_counts_twice() -> None:
    for offset in OFFSETS:
        assert digits(detect(after(offset, dtmf("55", on_ms=70, off_ms=40)))) == "55", offset


def test_a_10_ms_interruption_does_not_split_a_digit() -> None:
    """Q.24: an interruption of up to 10 ms is not a pause, so the digit goes on."""
    for offset in OFFSETS:
        assert digits(detect(after(offset, dtmf("55", on_ms=70, off_ms=10)))) == "5", offset


@pytest.mark.parametrize("twist_db", [7.0, -3.5])
def test_twist_within_the_limits_is_accepted(twist_db: float) -> None:
    """The column may be up to 8 dB louder than the row (normal twist), 4 dB quieter."""
    assert digits(detect(dtmf(SEQUENCE, twist_db=twist_db))) == SEQUENCE


@pytest.mark.parametrize("twist_db", [9.0, -5.0])
def test_twist_beyond_the_limits_is_rejected(twist_db: float) -> None:
    assert detect(dtmf(SEQUENCE, twist_db=twist_db)) == []


def test_a_quiet_digit_is_accepted_and_a_faint_one_is_not() -> None:
    quiet, faint = 10 ** (-33 / 20), 10 ** (-40 / 20)  # dBFS per tone; the limit is -36
    assert digits(detect(dtmf(SEQUENCE, amplitude=quiet))) == SEQUENCE
    assert detect(dtmf(SEQUENCE, amplitude=faint)) == []


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(encode_ulaw, decode_ulaw), (encode_alaw, decode_alaw)],
    ids=["ulaw", "alaw"],
)
def test_digits_survive_g711(encode, decode) -> None:
    for amplitude in (0.02, 0.2, 0.45):  # near the quantiser's coarse low end, and loud
        pcm = decode(encode(dtmf(SEQUENCE, amplitude=amplitude)))
        assert digits(detect(pcm)) == SEQUENCE, amplitude


def test_digits_are_found_in_white_noise_at_15_db_snr() -> None:
    pcm = dtmf(SEQUENCE, amplitude=0.2).astype(np.float64)
    tone_power = 2 * (0.2 * 32767) ** 2 / 2  # two sines of amplitude 0.2
    noise = np.random.default_rng(7).normal(0, np.sqrt(tone_power / 10 ** (15 / 10)), len(pcm))
    assert digits(detect(np.rint(pcm + noise).astype(np.int16))) == SEQUENCE


def test_noise_alone_gives_no_digit() -> None:
    rng = np.random.default_rng(8)
    legs = [
        np.clip(rng.normal(0, s * 32767, 20 * RATE), -32768, 32767).astype(np.int16)
        for s in (0.01, 0.1, 0.3)
    ]
    assert detect(*legs) == []


def test_each_row_of_a_batch_has_its_own_digits() -> None:
    events = detect(dtmf("1470", off_ms=90), after(400, dtmf("#9D", on_ms=50)))
    assert (digits(events, 0), digits(events, 1)) == ("1470", "#9D")
    assert all(e.start >= 400 for e in events if e.key == 1)


def test_a_key_keeps_its_state_when_others_join_and_leave() -> None:
    """A digit keyed across a change of membership is still one digit of its own leg."""
    pcm = dtmf("8", on_ms=200)
    detector, events = DtmfDetector(), []
    for n, at in enumerate(range(0, len(pcm) + 2 * FRAME, FRAME)):
        frame = np.zeros(FRAME, np.int16)
        frame[: len(pcm[at : at + FRAME])] = pcm[at : at + FRAME]
        keys = ["caller", "other"] if n % 3 else ["other", "caller"]
        if n > 6:
            detector.forget("other")
            keys = ["caller"]
        rows = np.zeros((len(keys), FRAME), np.int16)
        rows[keys.index("caller")] = frame
        events += detector.update(keys, rows)
    assert [(e.key, e.digit, e.end) for e in events] == [
        ("caller", "8", False),
        ("caller", "8", True),
    ]


SPEECH = (
    "Thank you for calling. Your call is important to us, please stay on the line and an agent "
    "will be with you shortly. If you know the extension of the person you wish to reach, you "
    "may dial it at any time. Our offices are open from nine in the morning until five thirty "
    "in the evening, Monday to Friday, except on public holidays. The quick brown fox jumps "
    "over the lazy dog, and she sells sea shells by the sea shore. One, two, three, four, five, "
    "six, seven, eight, nine, zero; hash, star. Would you like to hear these options again? "
)
# Four voices at four speeds: espeak-ng voice, variant, speech rate (1.0 is 175 words a minute).
VOICES = [("en-us", None, 1.0), ("en-us", "f3", 0.9), ("de", "m2", 0.97), ("fr-fr", "m3", 1.03)]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
async def test_minutes_of_speech_give_no_digit() -> None:
    synthesizer = SpeechSynthesizer()
    spoken = [
        await synthesizer.synthesize(SPEECH * 2, Voice(name, variant, name, "MALE"), rate)
        for name, variant, rate in VOICES
    ]
    speech = np.concatenate(spoken)
    assert len(speech) >= 180 * RATE  # at least three minutes
    legs = np.array_split(speech, 8)  # eight legs of speech in one batch: quicker, and batched
    assert detect(*legs) == []
    # Keyed over the same speech, a digit is found: the silence above is not deafness.
    talk = legs[0][: 3 * RATE].astype(np.int32)
    keys = np.zeros(len(talk), np.int32)
    tones = dtmf("6", on_ms=100, amplitude=0.3)
    keys[RATE : RATE + len(tones)] = tones
    assert digits(detect(np.clip(talk + keys, -32768, 32767).astype(np.int16))) == "6"
