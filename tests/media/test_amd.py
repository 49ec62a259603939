"""Answering machine detection on simulated answers: what it says about a person, a machine
with and without a beep, silence and noise, and when; and the simulated greetings themselves
(reproducible by seed, varied across seeds)."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from gateway.media.amd import AmdSettings, MachineDetector, MachineVerdict, MessageEnd
from gateway.media.amd_features import NAMES, GreetingFeatures
from gateway.media.amd_model import MODEL_PATH, load_model
from gateway.media.amd_pitch import PitchContour
from gateway.media.codecs import decode_ulaw, encode_ulaw
from gateway.media.tts import SpeechSynthesizer
from gateway.media.voices import resolve_voice
from gateway.testing.audio import dominant_frequency, silence, tone
from trunks.pstn.greetings import Greeting, human_greeting, machine_greeting
from trunks.pstn.line_noise import LineNoise

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

RATE = 8000
FRAME = 160
WITH_MESSAGE = AmdSettings(detection_time=3.7, message_timeout=20.0)


@pytest.fixture
def synthesizer() -> SpeechSynthesizer:
    return SpeechSynthesizer()


def listen(
    pcm: np.ndarray, settings: AmdSettings = WITH_MESSAGE
) -> list[MachineVerdict | MessageEnd]:
    """Everything the detector says about ``pcm`` (after a G.711 round trip), frame by frame,
    checking it says nothing once finished."""
    pcm = decode_ulaw(encode_ulaw(pcm))
    detector = MachineDetector(settings)
    events: list[MachineVerdict | MessageEnd] = []
    for start in range(0, len(pcm) - FRAME + 1, FRAME):
        was_finished = detector.finished
        said = detector.feed(pcm[start : start + FRAME])
        assert not (was_finished and said), "spoke after finishing"
        events += said
    return events


def answer(greeting: Greeting, after_s: float = 5.0) -> np.ndarray:
    """The greeting and the line's noise after it."""
    return np.concatenate([greeting.samples, greeting.tail(after_s)])


def verdict_of(events: list) -> MachineVerdict:
    verdicts = [e for e in events if isinstance(e, MachineVerdict)]
    assert len(verdicts) == 1, events
    return verdicts[0]


async def first_seed(make, wanted, synthesizer, **options) -> Greeting:
    """The first greeting of seeds 1, 2, ... with property ``wanted`` (deterministic)."""
    for seed in range(1, 60):
        greeting = await make(seed, synthesizer, **options)
        if wanted(greeting):
            return greeting
    raise AssertionError("no seed gives such a greeting")


async def test_a_person_saying_hello_is_human_soon_after(synthesizer):
    greeting = await first_seed(
        human_greeting, lambda g: g.speech_end_ms - g.speech_start_ms < 1200, synthesizer
    )
    events = listen(answer(greeting))
    verdict = verdict_of(events)
    assert verdict.result == "HUMAN", greeting.text
    assert greeting.speech_end_ms + 500 <= verdict.after_ms <= greeting.speech_end_ms + 1400
    assert verdict.confidence["HUMAN"] > 0.9
    assert verdict.confidence["HUMAN"] + verdict.confidence["MACHINE"] == pytest.approx(1)
    assert events == [verdict]  # HUMAN: no message detection


async def test_a_machine_with_a_beep_is_machine_then_beep_at_its_start(synthesizer):
    greeting = await machine_greeting(7, synthesizer, beep=True)
    assert greeting.beep_at_ms is not None
    events = listen(answer(greeting))
    verdict = verdict_of(events)
    assert verdict.result == "MACHINE", greeting.text
    assert verdict.after_ms <= 3700
    assert verdict.confidence["MACHINE"] > 0.5
    ends = [e for e in events if isinstance(e, MessageEnd)]
    assert [e.result for e in ends] == ["BEEP"]
    assert abs(ends[0].after_ms - greeting.beep_at_ms) <= 300


async def test_a_machine_without_a_beep_ends_in_silence(synthesizer):
    greeting = await machine_greeting(8, synthesizer, beep=False)
    assert greeting.beep_at_ms is None
    events = listen(answer(greeting))
    assert verdict_of(events).result == "MACHINE"
    end = events[-1]
    assert isinstance(end, MessageEnd) and end.result == "SILENCE"
    assert greeting.speech_end_ms + 1500 <= end.after_ms <= greeting.speech_end_ms + 2300


async def test_message_timeout_comes_first_when_the_greeting_is_longer(synthesizer):
    greeting = await first_seed(
        machine_greeting, lambda g: g.speech_end_ms > 7000, synthesizer, beep=False
    )
    events = listen(answer(greeting), AmdSettings(message_timeout=5.0))
    assert verdict_of(events).result == "MACHINE"
    assert events[-1] == MessageEnd("TIMEOUT", 5000)


async def test_without_message_timeout_the_verdict_is_all(synthesizer):
    greeting = await machine_greeting(7, synthesizer, beep=True)
    events = listen(answer(greeting), AmdSettings())
    assert [type(e) for e in events] == [MachineVerdict]


async def test_the_verdict_comes_by_a_short_detection_time(synthesizer):
    greeting = await machine_greeting(3, synthesizer, beep=False)
    verdict = verdict_of(listen(answer(greeting), AmdSettings(detection_time=1.0)))
    assert verdict.after_ms <= 1000


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(silence(6.0), id="silence"),
        pytest.param(LineNoise("white", -40.0, 1).samples(6 * RATE), id="white noise"),
        pytest.param(LineNoise("pink", -35.0, 2).samples(6 * RATE), id="pink noise"),
        pytest.param(LineNoise("babble", -40.0, 3).samples(6 * RATE), id="babble"),
    ],
)
def test_an_answer_that_says_nothing_is_human_at_the_deadline(line):
    """A person waiting for the caller to speak first; a machine always says something."""
    events = listen(np.rint(line).astype(np.int16))
    assert events == [MachineVerdict("HUMAN", {"HUMAN": 0.65, "MACHINE": 0.35}, 3700)]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            np.concatenate([silence(1.0), LineNoise("white", -41.0, 4).samples(5 * RATE)]),
            id="digital silence, then the line's noise",
        ),
        pytest.param(
            np.concatenate(
                [
                    LineNoise("pink", -38.0, 5).samples(2 * RATE),
                    silence(1.0),
                    LineNoise("pink", -38.0, 6).samples(3 * RATE),
                ]
            ),
            id="noise, a gap of digital silence, noise again",
        ),
    ],
)
def test_the_line_coming_after_digital_silence_is_no_machine(line):
    """The floor catches up with a steady line within a second: at most that second passes
    for a word, and the person waiting is not taken for a machine (it was for 45 s)."""
    events = listen(np.rint(line).astype(np.int16))
    assert [e.result for e in events] == ["HUMAN"]


@pytest.mark.parametrize("frequency", [400.0, 2000.0])
async def test_beeps_at_the_band_edges_are_found(synthesizer, frequency):
    greeting = await machine_greeting(8, synthesizer, beep=False)
    beep_at = len(greeting.samples) + 4000  # 0.5 s after the last word
    pcm = np.concatenate(
        [greeting.samples, silence(0.5), tone(frequency, 0.12, amplitude=0.2), silence(3.0)]
    )
    assert dominant_frequency(pcm[beep_at : beep_at + 960], RATE) == pytest.approx(frequency, 2)
    end = listen(pcm)[-1]
    assert end.result == "BEEP"
    assert abs(end.after_ms - beep_at // 8) <= 40


@pytest.mark.parametrize("frequency", [300.0, 2100.0])
async def test_tones_outside_the_band_are_no_beep(synthesizer, frequency):
    greeting = await machine_greeting(8, synthesizer, beep=False)
    pcm = np.concatenate(
        [greeting.samples, silence(0.5), tone(frequency, 0.6, amplitude=0.2), silence(3.0)]
    )
    assert listen(pcm)[-1].result == "SILENCE"


async def test_a_frame_costs_little(synthesizer):
    """Well under 50 µs a frame on this machine (the bound here is lax: a shared CI box), over
    a greeting: speech frames, the model's checks and the pitch of each utterance's end."""
    greeting = await machine_greeting(8, synthesizer, beep=False)
    pcm = answer(greeting)
    detector = MachineDetector(WITH_MESSAGE)
    fed = 0
    started = time.perf_counter()
    for frame in pcm[: len(pcm) // FRAME * FRAME].reshape(-1, FRAME):
        detector.feed(frame)
        fed += 1
        if detector.finished:  # a finished detector costs nothing: not counted
            break
    spent = time.perf_counter() - started
    assert detector.verdict is not None and detector.message_end is not None
    assert detector.verdict.result == "MACHINE" and detector.verdict.after_ms < 3700
    assert spent / fed < 200e-6


def test_settings_are_checked():
    for wrong in (dict(detection_time=0.5), dict(detection_time=6), dict(message_timeout=61)):
        with pytest.raises(ValueError):
            AmdSettings(**wrong)


async def test_greetings_are_reproducible_by_seed(synthesizer):
    for make in (human_greeting, machine_greeting):
        first, again = await make(5, synthesizer), await make(5, SpeechSynthesizer())
        assert first.text == again.text
        assert np.array_equal(first.samples, again.samples)
        assert np.array_equal(first.tail(1.0), again.tail(1.0))


async def test_greetings_vary_across_seeds(synthesizer):
    humans = [await human_greeting(seed, synthesizer) for seed in range(12)]
    machines = [await machine_greeting(seed, synthesizer) for seed in range(12)]
    for greetings in (humans, machines):
        assert len({g.text for g in greetings}) >= 8
        assert len({g.speech_start_ms for g in greetings}) >= 10
        assert len({g.noise.kind for g in greetings}) >= 3
    assert all(g.kind == "human" and g.beep_at_ms is None for g in humans)
    assert all(200 <= g.speech_start_ms <= 1500 for g in humans)
    assert all(2500 <= g.speech_end_ms - g.speech_start_ms <= 16000 for g in machines)
    beeps = [g for g in machines if g.beep_at_ms is not None]
    assert 0 < len(beeps) < len(machines)  # the seed decides
    for g in beeps:
        start = g.beep_at_ms * RATE // 1000
        assert g.beep_at_ms > g.speech_end_ms
        assert 400 * 0.95 <= dominant_frequency(g.samples[start : start + 800], RATE) <= 2100
    for g in humans:  # the samples end with the last word; the line's noise is the caller's
        assert abs(len(g.samples) * 1000 // RATE - g.speech_end_ms) <= 1


def rise_of(pcm: np.ndarray) -> float:
    contour = PitchContour()
    for start in range(0, len(pcm) - FRAME + 1, FRAME):
        frame = pcm[start : start + FRAME].astype(np.float32)
        contour.feed(frame, loud=bool(np.abs(frame).max() > 300))  # speech, not the silence
    return contour.rise()


def glide(start_hz: float, end_hz: float, seconds: float = 0.24) -> np.ndarray:
    """A voice-like buzz (three harmonics) whose pitch glides from ``start_hz`` to ``end_hz``."""
    t = np.arange(round(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(np.linspace(start_hz, end_hz, len(t))) / RATE
    return 8000 * sum(np.sin(k * phase) / k for k in (1, 2, 3))


def test_a_pitch_glide_up_rises_and_down_does_not():
    """Over the last 12 voiced frames (a word): 5.4 semitones, less the last frames' spread."""
    assert 2.5 <= rise_of(glide(110, 150)) <= 5.4
    assert rise_of(glide(150, 110)) < 0.5
    assert rise_of(np.random.default_rng(1).normal(0, 3000, RATE // 2)) == 0  # unvoiced


async def test_a_spoken_question_rises_and_a_statement_does_not(synthesizer):
    voice = resolve_voice("en")
    question = await synthesizer.synthesize("Who's calling?", voice)
    statement = await synthesizer.synthesize("Please leave a message.", voice)
    assert rise_of(question) >= 1.5 > rise_of(statement)


def test_features_time_the_greeting_its_pauses_and_the_silence_after():
    """0.5 s of a quiet line, three 0.6 s bursts of buzz 0.4 s apart, then 0.8 s of the line."""
    burst = glide(120, 120, 0.6)
    pcm = np.concatenate(
        [silence(0.5), burst, silence(0.4), burst, silence(0.4), burst, silence(0.8)]
    )
    pcm = pcm + LineNoise("white", -60.0, 7).samples(len(pcm))
    features = GreetingFeatures()
    for frame in pcm.reshape(-1, FRAME):
        features.feed(frame.astype(np.float32))
    heard = dict(zip(NAMES, features.vector(), strict=True))
    assert heard["time"] == pytest.approx(3.9)
    assert heard["initial_silence"] == pytest.approx(0.5, abs=0.03)
    assert heard["greeting"] == pytest.approx(2.6, abs=0.05)
    assert heard["silence"] == pytest.approx(0.8, abs=0.05)
    assert heard["pauses"] == 2
    assert heard["longest_pause"] == pytest.approx(0.4, abs=0.05)
    assert heard["longest_stretch"] == pytest.approx(0.6, abs=0.05)
    assert heard["falling_ends"] == 3 and heard["rising_ends"] == 0  # a level pitch


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        pytest.param(lambda m: m.pop("scale"), "no scale", id="a field missing"),
        pytest.param(lambda m: m["features"].pop(), "other features", id="other features"),
        pytest.param(lambda m: m["mean"].pop(), r"mean is \(15,\)", id="a short mean"),
        pytest.param(
            lambda m: [row.pop() for row in m["hidden_weights"]], "hidden_weights", id="shapes"
        ),
        pytest.param(lambda m: m["scale"].__setitem__(0, 0.0), "positive", id="a zero scale"),
        pytest.param(lambda m: m.update(machine_above=0.3), "thresholds", id="thresholds"),
    ],
)
def test_a_model_that_does_not_fit_the_features_is_refused_on_loading(tmp_path, change, complaint):
    """At import, with what is wrong, rather than a numpy error mid-call on the event loop."""
    model = json.loads(MODEL_PATH.read_text())
    change(model)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model))
    with pytest.raises(ValueError, match=complaint):
        load_model(path)
    load_model()  # while the shipped one loads
