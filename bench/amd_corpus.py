"""A labelled corpus for answering machine detection, generated from seeds.

Case ``seed`` is a person (even seeds) or an answering machine (odd seeds) from
trunks/pstn/greetings.py: espeak-ng voices in several languages and variants, speech rates,
varied phrasings and timings, line noise, beeps of 400-2000 Hz and 0.1-1.2 s (plain, faded,
two-tone) or none. On top of that, per seed: more noise for some (white or pink, 10-20 dB
below the speech), the line's noise floor after the greeting (``TAIL_S``), and a G.711 round
trip (PCMU or PCMA), as a detector on a phone call gets it.

    python bench/amd_corpus.py --out DIR [--count 400] [--first-seed 100000]

writes DIR/<seed>.wav (8 kHz mono) and DIR/manifest.json (labels and ground truth).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gateway.media.codecs import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from gateway.media.frame import NARROWBAND
from gateway.media.tts import SpeechSynthesizer
from trunks.pstn.greetings import Greeting, human_greeting, machine_greeting
from trunks.pstn.line_noise import LineNoise

TAIL_S = 5.0  # after the greeting: enough for a verdict and a SILENCE after the last word
MIN_LENGTH_S = 6.0  # every case outlasts the longest detection time (5 s)
TUNING_SEEDS = range(0, 100_000)  # what the detector's constants were tuned on
HELD_OUT_FIRST_SEED = 100_000  # the evaluation's seeds start here, never tuned on


@dataclass(frozen=True)
class Case:
    seed: int
    kind: str  # "human" | "machine"
    beep_at_ms: int | None
    speech_start_ms: int
    speech_end_ms: int
    codec: str
    extra_noise: str  # "none", "white" or "pink"
    text: str
    style: str  # Greeting.style: people's "short" or "long" greeting, machines' script

    @property
    def name(self) -> str:
        return f"{self.seed:06d}-{self.kind}"


async def make_case(seed: int, synthesizer: SpeechSynthesizer) -> tuple[Case, np.ndarray]:
    """Case ``seed`` and its audio (int16, 8 kHz, after the G.711 round trip)."""
    greeting = await (machine_greeting if seed % 2 else human_greeting)(seed, synthesizer)
    rng = np.random.default_rng((seed, 2))
    tail = max(TAIL_S, MIN_LENGTH_S - len(greeting.samples) / NARROWBAND)
    line = np.concatenate([greeting.samples, greeting.tail(tail)]).astype(np.float64)
    extra = str(rng.choice(["none", "white", "pink"], p=[0.6, 0.2, 0.2]))
    if extra != "none":
        level = _speech_dbfs(greeting) - rng.uniform(10.0, 20.0)
        line += LineNoise(extra, level, int(rng.integers(2**31))).samples(len(line))
    pcm = np.clip(np.rint(line), -32768, 32767).astype(np.int16)
    codec = str(rng.choice(["PCMU", "PCMA"]))
    pcm = decode_ulaw(encode_ulaw(pcm)) if codec == "PCMU" else decode_alaw(encode_alaw(pcm))
    case = Case(
        seed=seed,
        kind=greeting.kind,
        beep_at_ms=greeting.beep_at_ms,
        speech_start_ms=greeting.speech_start_ms,
        speech_end_ms=greeting.speech_end_ms,
        codec=codec,
        extra_noise=extra,
        text=greeting.text,
        style=greeting.style,
    )
    return case, pcm


async def make_corpus(seeds: range) -> list[tuple[Case, np.ndarray]]:
    """Every case of ``seeds``; espeak-ng runs concurrently (one process per CPU)."""
    synthesizer = SpeechSynthesizer(cache_bytes=0)
    return list(await asyncio.gather(*(make_case(seed, synthesizer) for seed in seeds)))


def _speech_dbfs(greeting: Greeting) -> float:
    """RMS level of the greeting's speech, in dBFS (a full-scale sine is 0)."""
    start = greeting.speech_start_ms * NARROWBAND // 1000
    end = greeting.speech_end_ms * NARROWBAND // 1000
    x = greeting.samples[start:end].astype(np.float64)
    return float(10 * np.log10(max(np.mean(x * x), 1.0) * 2 / 32767.0**2))


def write_corpus(corpus: list[tuple[Case, np.ndarray]], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for case, pcm in corpus:
        with wave.open(str(directory / f"{case.name}.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(NARROWBAND)
            out.writeframes(pcm.astype("<i2").tobytes())
    manifest = [asdict(case) | {"file": f"{case.name}.wav"} for case, _ in corpus]
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--first-seed", type=int, default=HELD_OUT_FIRST_SEED)
    args = parser.parse_args()
    corpus = asyncio.run(make_corpus(range(args.first_seed, args.first_seed + args.count)))
    write_corpus(corpus, args.out)
    print(f"{len(corpus)} cases in {args.out}")


if __name__ == "__main__":
    main()
