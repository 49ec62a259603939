"""What a simulated answerer sends from the moment it answers: a person's first words or an
answering machine's greeting (and beep), spoken by espeak-ng, reproducible from a seed.

The seed picks everything that varies between real answers: language, voice variant, speech
rate, phrasing, the silence before the first word, the pauses, level, line noise and, for
machines, the beep (400-2000 Hz, 0.1-1.2 s, plain, faded or two-tone). Phrases are
synthesised one by one and joined with chosen pauses, so the timing (the ground truth an
answering-machine detector is judged by) is known to the sample.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

import numpy as np

from gateway.media.frame import NARROWBAND
from gateway.media.tts import SpeechSynthesizer
from gateway.media.voices import VARIANTS, Voice, resolve_voice
from trunks.pstn.greeting_scripts import SCRIPT_WEIGHTS, SCRIPTS, Scripts
from trunks.pstn.line_noise import KINDS, LineNoise

FULL_SCALE = 32767.0
QUIET_LINE = LineNoise()
LONG_SHARE = 0.1  # of people, who answer with a sentence rather than a word or two
# espeak-ng speech rates: people answering speak briskly, recorded greetings are read out.
HUMAN_RATES, MACHINE_RATES = (0.9, 1.35), (0.8, 1.25)


@dataclass(frozen=True)
class Greeting:
    kind: str  # "human" | "machine"
    samples: np.ndarray  # int16, 8 kHz, from the answer on (pauses included)
    beep_at_ms: int | None  # ground truth for machines with a beep
    speech_end_ms: int  # when the last speech ends (ground truth)
    text: str  # what was said, for logs
    speech_start_ms: int = 0  # when the first word starts
    noise: LineNoise = QUIET_LINE  # the line's noise, to continue after the samples
    style: str = ""  # people: "short" or "long", "+again"; machines: which script

    def tail(self, seconds: float) -> np.ndarray:
        """What the line carries after the greeting: its noise floor, as int16."""
        count = round(seconds * NARROWBAND)
        return _int16(self.noise.samples(count, start=len(self.samples)))


@dataclass
class _Take:
    """A greeting being assembled: speech pieces at sample offsets, and its beep."""

    rng: np.random.Generator
    pieces: list[tuple[int, np.ndarray]] = dataclasses.field(default_factory=list)
    beep: tuple[int, np.ndarray] | None = None

    def speech_end(self) -> int:
        return max(at + len(pcm) for at, pcm in self.pieces)

    def render(self, kind: str, text: str, style: str) -> Greeting:
        """Mix at a random speech level with random line noise."""
        rng = self.rng
        speech_dbfs = rng.uniform(-32.0, -16.0)
        voiced = np.concatenate([pcm for _, pcm in self.pieces]).astype(np.float64)
        gain = FULL_SCALE * 10 ** (speech_dbfs / 20) / np.sqrt(2) / _rms(voiced)
        end = self.speech_end() if self.beep is None else self.beep[0] + len(self.beep[1])
        noise_kind = str(rng.choice(KINDS))
        noise = LineNoise(
            noise_kind, speech_dbfs - rng.uniform(12.0, 35.0), int(rng.integers(2**31))
        )
        mix = noise.samples(end)
        for at, pcm in self.pieces:
            mix[at : at + len(pcm)] += pcm * gain
        beep_at = None
        if self.beep is not None:
            beep_at, tone = self.beep
            mix[beep_at : beep_at + len(tone)] += (
                tone * FULL_SCALE * 10 ** ((speech_dbfs + rng.uniform(-6.0, 6.0)) / 20)
            )
        return Greeting(
            kind=kind,
            samples=_int16(mix),
            beep_at_ms=None if beep_at is None else _ms(beep_at),
            speech_end_ms=_ms(self.speech_end()),
            text=text,
            speech_start_ms=_ms(self.pieces[0][0]),
            noise=noise,
            style=style,
        )


async def human_greeting(seed: int, synthesizer: SpeechSynthesizer) -> Greeting:
    """A person answering: 0.2-1.5 s of silence, a short greeting (sometimes a longer one),
    then waiting; about a third speak again 2-4 s later, hearing nobody."""
    rng = np.random.default_rng((seed, 0))
    scripts, voice, rate, fill = _speaker(rng, HUMAN_RATES)
    style = "long" if rng.random() < LONG_SHARE else "short"
    first = fill(str(rng.choice(scripts.long if style == "long" else scripts.short)))
    again = fill(str(rng.choice(scripts.again))) if rng.random() < 0.35 else None
    phrases = [part.strip() for part in first.split("...")]  # "Hello... hello?": two goes
    if again:
        phrases.append(again)
    speech = await _speak(synthesizer, phrases, voice, rate)
    take = _Take(rng)
    at = _samples(rng.uniform(0.2, 1.5))
    for index, pcm in enumerate(speech):
        if index:
            is_again = again is not None and index == len(speech) - 1
            at += _samples(rng.uniform(2.0, 4.0) if is_again else rng.uniform(0.3, 0.7))
        take.pieces.append((at, pcm))
        at += len(pcm)
    return take.render("human", " ".join(phrases), style + ("+again" if again else ""))


async def machine_greeting(
    seed: int, synthesizer: SpeechSynthesizer, beep: bool | None = None
) -> Greeting:
    """An answering machine: 0.1-1.2 s of silence, a greeting of 3-15 s in sentences with
    natural pauses, then (if ``beep``; None: two in three, by the seed) a beep."""
    rng = np.random.default_rng((seed, 1))
    scripts, voice, rate, fill = _speaker(rng, MACHINE_RATES)
    index = int(rng.integers(len(scripts.machine)))
    script = scripts.machine[index]
    sentences = [fill(line.lstrip("*")) for line in script]
    kept = [line.startswith("*") for line in script]
    target = _samples(rng.uniform(3.0, 15.0))
    speech = await _speak(synthesizer, sentences, voice, rate)
    pauses = [_samples(rng.uniform(0.2, 0.8)) for _ in sentences]
    # Required sentences always; optional ones in order while the greeting is short of target.
    length = sum(
        len(pcm) + pause for pcm, pause, keep in zip(speech, pauses, kept, strict=True) if keep
    )
    chosen = list(kept)
    for index, keep in enumerate(kept):
        if not keep and length + len(speech[index]) + pauses[index] <= target:
            chosen[index] = True
            length += len(speech[index]) + pauses[index]
    take = _Take(rng)
    at = _samples(rng.uniform(0.1, 1.2))
    said = []
    for pcm, pause, sentence, use in zip(speech, pauses, sentences, chosen, strict=True):
        if use:
            if take.pieces:
                at += pause
            take.pieces.append((at, pcm))
            said.append(sentence)
            at += len(pcm)
    if beep if beep is not None else rng.random() < 2 / 3:
        take.beep = (at + _samples(rng.uniform(0.1, 0.9)), _beep(rng))
    return take.render("machine", " ".join(said), f"{scripts.voice} script {index}")


def _speaker(rng: np.random.Generator, rates: tuple[float, float]):
    """(scripts, voice, speech rate, placeholder filler) of one answerer."""
    scripts: Scripts = SCRIPTS[int(rng.choice(len(SCRIPTS), p=SCRIPT_WEIGHTS))]
    gender = str(rng.choice(sorted(VARIANTS)))
    voice = resolve_voice(scripts.voice, gender)
    voice = dataclasses.replace(voice, variant=str(rng.choice(VARIANTS[gender])))
    rate = float(rng.uniform(*rates))
    values = dict(
        name=str(rng.choice(scripts.names)),
        company=str(rng.choice(scripts.companies)),
        number=" ".join(str(d) for d in rng.integers(0, 10, 7)),
    )
    return scripts, voice, rate, lambda text: text.format(**values)


async def _speak(
    synthesizer: SpeechSynthesizer, phrases: list[str], voice: Voice, rate: float
) -> list[np.ndarray]:
    """Each phrase spoken, its leading and trailing silence cut (so pauses are ours)."""
    spoken = await asyncio.gather(*(synthesizer.synthesize(p, voice, rate) for p in phrases))
    return [_trimmed(pcm) for pcm in spoken]


def _trimmed(pcm: np.ndarray) -> np.ndarray:
    """From the first to the last 5 ms louder than 1/50 of the peak."""
    x = np.abs(pcm.astype(np.float64))
    step = NARROWBAND // 200
    loud = np.flatnonzero(x[: len(x) // step * step].reshape(-1, step).max(axis=1) > x.max() / 50)
    return pcm[loud[0] * step : (loud[-1] + 1) * step].astype(np.float64)


def _beep(rng: np.random.Generator) -> np.ndarray:
    """A unit-amplitude beep: 400-2000 Hz for 0.1-1.2 s; plain, faded in and out, or two tones
    one after the other."""
    seconds = rng.uniform(0.1, 1.2)
    frequency = rng.uniform(400.0, 2000.0)
    style = rng.choice(["plain", "fade", "two-tone"], p=[0.6, 0.2, 0.2])
    t = np.arange(_samples(seconds)) / NARROWBAND
    if style == "two-tone":
        second = frequency * rng.uniform(1.2, 1.6)
        if second > 2000.0:
            second = frequency / rng.uniform(1.2, 1.6)
        half = len(t) // 2
        phase = 2 * np.pi * np.where(t < t[half], frequency * t, second * t)
        tone = np.sin(phase)
    else:
        tone = np.sin(2 * np.pi * frequency * t)
    if style == "fade":
        ramp = min(_samples(rng.uniform(0.03, 0.15)), len(t) // 3)
        envelope = np.ones(len(t))
        envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
        envelope[len(t) - ramp :] = np.linspace(1.0, 0.0, ramp)
        tone *= envelope
    return tone


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) or 1.0


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def _samples(seconds: float) -> int:
    return round(seconds * NARROWBAND)


def _ms(samples: int) -> int:
    return samples * 1000 // NARROWBAND
