"""Speech from espeak-ng through SpeechSynthesizer: what comes out is speech at 8 kHz, as long
and as fast as asked, cached and shared, and a cancelled synthesis leaves no process."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gateway.media.tts import SpeechSynthesizer, SynthesisFailed, _narrowband
from gateway.media.voices import Voice, resolve_voice
from gateway.testing.audio import dominant_frequency, read_wav, rms_dbfs, tone, tone_level

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

RATE = 8000
HELLO = "Hello world."
EN = resolve_voice("en")
LONG = "word " * 3000  # about 1.5 s of work for espeak-ng, 17 minutes of speech


@pytest.fixture
def synthesizer() -> SpeechSynthesizer:
    return SpeechSynthesizer()


def seconds(pcm: np.ndarray) -> float:
    return len(pcm) / RATE


def espeak_children() -> list[str]:
    """States of this process's espeak-ng children, zombies included."""
    states = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        comm = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if comm == "espeak-ng" and int(ppid) == os.getpid():
            states.append(state)
    return states


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.002)


def pitch(pcm: np.ndarray) -> float:
    """Median fundamental (Hz) of the voiced 40 ms blocks, by autocorrelation over 70-400 Hz."""
    block = RATE // 25
    lags = np.arange(RATE // 400, RATE // 70)
    found = []
    x = pcm.astype(np.float64)
    loud = 0.3 * np.abs(x).max()
    for start in range(0, len(x) - block - lags[-1], block // 2):
        frame = x[start : start + block + lags[-1]]
        if np.abs(frame[:block]).max() < loud:
            continue
        head = frame[:block]
        r = [np.dot(head, frame[lag : lag + block]) for lag in lags]
        found.append(RATE / lags[int(np.argmax(r))])
    return float(np.median(found))


async def test_speech_is_loud_8_khz_mono_int16(synthesizer: SpeechSynthesizer) -> None:
    pcm = await synthesizer.synthesize(HELLO, EN)
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert rms_dbfs(pcm) > -30  # speech, not silence
    # As long as espeak-ng's own 22.05 kHz rendering: the samples are at 8 kHz.
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", EN.espeak_name], input=HELLO.encode(),
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    reference, rate = read_wav(wav)
    assert rate == 22050
    assert seconds(pcm) == pytest.approx(len(reference) / rate, abs=0.001)


@pytest.mark.parametrize("frequency", [300.0, 1000.0, 3400.0])
def test_resampling_keeps_the_telephone_band(frequency: float) -> None:
    pcm = _narrowband(tone(frequency, 1.0, rate=22050), 22050)
    assert len(pcm) == RATE
    assert dominant_frequency(pcm, RATE) == pytest.approx(frequency, abs=1)
    assert tone_level(pcm, RATE, frequency) == pytest.approx(20 * np.log10(0.3), abs=0.1)
    # In time, too: the filter is centred on each output, so speech does not start late.
    assert np.abs(pcm[100:-100] - tone(frequency, 1.0)[100:-100].astype(np.int32)).max() < 200


@pytest.mark.parametrize("frequency", [4300.0, 5000.0, 9000.0])
def test_resampling_lets_nothing_above_4_khz_fold_in(frequency: float) -> None:
    pcm = _narrowband(tone(frequency, 1.0, rate=22050), 22050)
    assert rms_dbfs(pcm[100:-100]) < -70  # a 0.3 full-scale tone is -10.5 dBFS


async def test_duration_grows_with_the_text(synthesizer: SpeechSynthesizer) -> None:
    short = await synthesizer.synthesize("One two three.", EN)
    long = await synthesizer.synthesize("One two three four five six seven eight nine.", EN)
    assert 2.0 < seconds(long) / seconds(short) < 4.0


async def test_speech_rate_scales_the_speed(synthesizer: SpeechSynthesizer) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    slow, normal, fast = [await synthesizer.synthesize(text, EN, r) for r in (0.5, 1.0, 2.0)]
    # espeak-ng keeps some fixed pauses, so 4x the rate is a little over 4x shorter.
    assert 3.5 < seconds(slow) / seconds(fast) < 5.0
    assert 1.6 < seconds(slow) / seconds(normal) < 2.4
    assert 1.6 < seconds(normal) / seconds(fast) < 2.6


@pytest.mark.parametrize("rate", [0.49, 2.01, 0.0, -1.0, math.nan, math.inf])
async def test_a_speech_rate_out_of_range_is_refused(
    synthesizer: SpeechSynthesizer, rate: float
) -> None:
    with pytest.raises(ValueError, match=r"speechRate must be within \[0.5, 2.0\]"):
        await synthesizer.synthesize(HELLO, EN, rate)
    assert synthesizer.processes_started == 0


@pytest.mark.parametrize("text", ["", "  \n\t"])
async def test_empty_text_is_refused(synthesizer: SpeechSynthesizer, text: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        await synthesizer.synthesize(text, EN)


async def test_a_female_voice_is_higher_than_a_male_one(synthesizer: SpeechSynthesizer) -> None:
    text = "Hello, how are you today?"
    male = await synthesizer.synthesize(text, resolve_voice("en", "MALE"))
    female = await synthesizer.synthesize(text, resolve_voice("en", "FEMALE"))
    assert pitch(female) > 1.4 * pitch(male)


async def test_a_cache_hit_is_the_same_array_without_a_process(
    synthesizer: SpeechSynthesizer,
) -> None:
    first = await synthesizer.synthesize(HELLO, EN)
    again = await synthesizer.synthesize(HELLO, EN, 1.0)
    assert again is first and synthesizer.processes_started == 1
    assert not first.flags.writeable  # shared by every request: nobody may change it
    other = await synthesizer.synthesize(HELLO, EN, 1.2)
    assert other is not first and synthesizer.processes_started == 2


async def test_the_cache_keeps_to_its_byte_budget() -> None:
    synthesizer = SpeechSynthesizer(cache_bytes=15_000)  # 0.9 s: one short word at a time
    one = await synthesizer.synthesize("One.", EN)
    two = await synthesizer.synthesize("Two.", EN)
    assert one.nbytes + two.nbytes > 15_000 > max(one.nbytes, two.nbytes)
    assert await synthesizer.synthesize("Two.", EN) is two  # the latest stays
    assert synthesizer.processes_started == 2
    assert await synthesizer.synthesize("One.", EN) is not one  # the oldest was evicted
    assert synthesizer.processes_started == 3


async def test_concurrent_requests_for_the_same_speech_share_one_process(
    synthesizer: SpeechSynthesizer,
) -> None:
    results = await asyncio.gather(*(synthesizer.synthesize(HELLO, EN) for _ in range(5)))
    assert all(r is results[0] for r in results)
    assert synthesizer.processes_started == 1


async def test_a_cancelled_synthesis_leaves_no_process(synthesizer: SpeechSynthesizer) -> None:
    task = asyncio.create_task(synthesizer.synthesize(LONG, EN))
    # Mid-synthesis: espeak-ng runs and the synthesizer holds it.
    await until(lambda: synthesizer.processes_started == 1 and espeak_children())
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.5  # killed, not left to finish
    assert espeak_children() == []  # neither running nor a zombie
    # Nothing half-done is kept: the next request synthesizes afresh and works.
    assert len(await synthesizer.synthesize(HELLO, EN)) > 0
    assert synthesizer.processes_started == 2


async def test_a_synthesis_cancelled_on_a_busy_loop_ends(synthesizer: SpeechSynthesizer) -> None:
    """A busy loop lets espeak-ng's output pile up after the reader stopped, until the pipe
    pauses: the cancelled synthesis must still end and reap its process."""

    turns = 0

    async def busy() -> None:
        nonlocal turns
        while True:
            time.sleep(0.005)  # media work holding the loop, not a wait
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(synthesizer.synthesize(LONG, EN))
    await until(lambda: synthesizer.processes_started == 1 and espeak_children())
    hog = asyncio.create_task(busy())
    try:
        await until(lambda: turns >= 4)
        task.cancel()
        async with asyncio.timeout(2):
            await asyncio.gather(task, return_exceptions=True)
    finally:
        hog.cancel()
    assert task.cancelled() and espeak_children() == []


async def test_one_cancelled_requester_does_not_stop_the_others(
    synthesizer: SpeechSynthesizer,
) -> None:
    text = "word " * 300
    leaving = asyncio.create_task(synthesizer.synthesize(text, EN))
    staying = asyncio.create_task(synthesizer.synthesize(text, EN))
    await until(lambda: synthesizer.processes_started == 1 and espeak_children())
    leaving.cancel()
    pcm = await staying
    assert leaving.cancelled()
    assert seconds(pcm) > 60 and synthesizer.processes_started == 1


async def test_a_request_just_after_a_cancel_gets_speech(synthesizer: SpeechSynthesizer) -> None:
    text = "word " * 300
    leaving = asyncio.create_task(synthesizer.synthesize(text, EN))
    await until(lambda: synthesizer.processes_started == 1 and espeak_children())
    leaving.cancel()
    await asyncio.sleep(0)  # the cancel is under way: the first synthesis is being killed
    pcm = await synthesizer.synthesize(text, EN)
    assert leaving.cancelled() and seconds(pcm) > 60
    assert synthesizer.processes_started == 2


async def test_ssml_is_read_as_markup(synthesizer: SpeechSynthesizer) -> None:
    plain = await synthesizer.synthesize("Hello world", EN)
    ssml = await synthesizer.synthesize('<speak>Hello <break time="1s"/> world</speak>', EN)
    # The break adds about a second of silence; read aloud, the tags would add several seconds.
    assert 0.7 < seconds(ssml) - seconds(plain) < 1.6
    frames = ssml[: len(ssml) // 160 * 160].reshape(-1, 160).astype(np.float64)
    quiet = np.sqrt((frames**2).mean(axis=1)) < 100
    longest = max(len(run) for run in "".join("q" if q else " " for q in quiet).split())
    assert longest * 0.02 > 0.8  # one gap of most of a second: the break


async def test_a_missing_espeak_fails_the_synthesis() -> None:
    synthesizer = SpeechSynthesizer(command="/nonexistent/espeak-ng")
    with pytest.raises(SynthesisFailed, match="cannot run /nonexistent/espeak-ng"):
        await synthesizer.synthesize(HELLO, EN)


async def test_an_espeak_error_fails_the_synthesis(synthesizer: SpeechSynthesizer) -> None:
    with pytest.raises(SynthesisFailed, match=r"exited with 1: .*does not exist"):
        await synthesizer.synthesize(HELLO, Voice("xx-nope", None, "xx", "MALE"))
    assert synthesizer.processes_started == 1
    with pytest.raises(SynthesisFailed):  # failures are not cached
        await synthesizer.synthesize(HELLO, Voice("xx-nope", None, "xx", "MALE"))
    assert synthesizer.processes_started == 2


async def test_no_audio_fails_the_synthesis() -> None:
    synthesizer = SpeechSynthesizer(command=shutil.which("true") or "true")
    with pytest.raises(SynthesisFailed, match="no WAV audio"):
        await synthesizer.synthesize(HELLO, EN)
