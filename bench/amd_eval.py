"""``make eval-amd``: answering machine detection on the generated corpus (bench/amd_corpus.py).

Each case is fed frame by frame (20 ms) to gateway/media/amd.py's MachineDetector, as the
media tick would, until it has nothing more to say. Printed: accuracy, the confusion matrix,
decision time after answer (median, p95), the beep found within 300 ms of its start, the beep
timing error, what machines without a beep ended with (SILENCE/TIMEOUT), and the detector's
cost per frame. The figures are on held-out seeds (from 100000 on); the detector's constants
were tuned on seeds below that (``--first-seed 0`` shows those).

    python bench/amd_eval.py [--count 400] [--first-seed 100000] [--detection-time 3.7]
                             [--message-timeout 20] [--errors] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amd_corpus import HELD_OUT_FIRST_SEED, Case, make_corpus, write_corpus

from gateway.media.amd import AmdSettings, MachineDetector, MachineVerdict, MessageEnd
from gateway.media.frame import NARROWBAND, samples_per_frame

FRAME = samples_per_frame(NARROWBAND)
BEEP_TOLERANCE_MS = 300


@dataclass(frozen=True)
class Outcome:
    case: Case
    verdict: MachineVerdict
    message_end: MessageEnd | None
    frames: int
    feed_ns: int


def detect(case: Case, pcm: np.ndarray, settings: AmdSettings) -> Outcome:
    detector = MachineDetector(settings)
    padded = np.zeros(-(-len(pcm) // FRAME) * FRAME, dtype=np.int16)
    padded[: len(pcm)] = pcm
    verdict = message_end = None
    frames = spent = 0
    for frame in padded.reshape(-1, FRAME):
        started = time.perf_counter_ns()
        events = detector.feed(frame)
        spent += time.perf_counter_ns() - started
        frames += 1
        for event in events:
            if isinstance(event, MachineVerdict):
                verdict = event
            else:
                message_end = event
        if detector.finished:
            break
    if verdict is None:
        raise AssertionError(f"case {case.seed}: no verdict in {len(pcm) / NARROWBAND:.1f} s")
    return Outcome(case, verdict, message_end, frames, spent)


def _greeting_ms(case: Case) -> int:
    return case.speech_end_ms - case.speech_start_ms


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    median, p95 = np.percentile(values, [50, 95])
    return f"median {median:.0f}  p95 {p95:.0f}"


def report(outcomes: list[Outcome], settings: AmdSettings, seeds: range, held_out: bool) -> None:
    def said(kind: str, result: str) -> int:
        return sum(o.case.kind == kind and o.verdict.result == result for o in outcomes)

    correct = sum(o.verdict.result.lower() == o.case.kind for o in outcomes)
    times = [o.verdict.after_ms for o in outcomes]
    beeps = [o for o in outcomes if o.case.beep_at_ms is not None]
    errors = [
        o.message_end.after_ms - o.case.beep_at_ms
        for o in beeps
        if o.message_end is not None and o.message_end.result == "BEEP"
    ]
    within = sum(abs(e) <= BEEP_TOLERANCE_MS for e in errors)
    no_beep = [o for o in outcomes if o.case.kind == "machine" and o.case.beep_at_ms is None]
    ends: dict[str, int] = {}
    for o in no_beep:
        key = o.message_end.result if o.message_end else "none (HUMAN)"
        ends[key] = ends.get(key, 0) + 1
    silence_after = [
        o.message_end.after_ms - o.case.speech_end_ms
        for o in no_beep
        if o.message_end is not None and o.message_end.result == "SILENCE"
    ]
    per_frame_us = sum(o.feed_ns for o in outcomes) / sum(o.frames for o in outcomes) / 1000
    humans = sum(o.case.kind == "human" for o in outcomes)
    which = "held-out" if held_out else "TUNING (not held out)"
    print(
        f"answering machine detection: {len(outcomes)} cases, seeds {seeds.start}-"
        f"{seeds.stop - 1} ({which}); {humans} human, {len(outcomes) - humans} machine"
    )
    print(
        f"settings: detection_time {settings.detection_time} s, "
        f"message_timeout {settings.message_timeout} s"
    )
    print(f"accuracy                {100 * correct / len(outcomes):6.2f} %")
    print("confusion (truth \\ said)      HUMAN  MACHINE")
    print(f"  human                     {said('human', 'HUMAN'):6d} {said('human', 'MACHINE'):8d}")
    print(
        f"  machine                   {said('machine', 'HUMAN'):6d} {said('machine', 'MACHINE'):8d}"
    )
    groups = {
        "people, short greeting": lambda c: c.kind == "human" and c.style.startswith("short"),
        "people, long greeting": lambda c: c.kind == "human" and c.style.startswith("long"),
        "machines, greeting < 5 s": lambda c: c.kind == "machine" and _greeting_ms(c) < 5000,
        "machines, greeting >= 5 s": lambda c: c.kind == "machine" and _greeting_ms(c) >= 5000,
    }
    for label, member in groups.items():
        group = [o for o in outcomes if member(o.case)]
        right = sum(o.verdict.result.lower() == o.case.kind for o in group)
        print(f"  {label:26s}{right:4d} of {len(group):3d} right")
    print(f"decision after answer   {_percentiles(times)} ms")
    for kind in ("human", "machine"):
        kind_times = [o.verdict.after_ms for o in outcomes if o.case.kind == kind]
        print(f"  {kind:8s}              {_percentiles(kind_times)} ms")
    if beeps:
        print(
            f"beep within {BEEP_TOLERANCE_MS} ms       {100 * within / len(beeps):6.2f} % "
            f"({within} of {len(beeps)} beeps)"
        )
        print(
            f"beep timing error       {_percentiles([abs(e) for e in errors])} ms "
            f"(signed median {np.median(errors) if errors else 0:.0f})"
        )
    print(
        f"machines without beep   {len(no_beep)}: "
        + ", ".join(f"{key} {count}" for key, count in sorted(ends.items()))
    )
    if silence_after:
        print(f"  SILENCE after speech  {_percentiles(silence_after)} ms")
    print(f"cost per frame          {per_frame_us:6.1f} µs (Python, one core)")


def show_errors(outcomes: list[Outcome]) -> None:
    for o in outcomes:
        c = o.case
        wrong = o.verdict.result.lower() != c.kind
        beep_missed = c.beep_at_ms is not None and (
            o.message_end is None
            or o.message_end.result != "BEEP"
            or abs(o.message_end.after_ms - c.beep_at_ms) > BEEP_TOLERANCE_MS
        )
        if wrong or beep_missed:
            end = f"{o.message_end.result}@{o.message_end.after_ms}" if o.message_end else "-"
            print(
                f"  {c.seed} {c.kind} said {o.verdict.result}@{o.verdict.after_ms} "
                f"speech {c.speech_start_ms}-{c.speech_end_ms} beep {c.beep_at_ms} end {end} "
                f"{c.codec} +{c.extra_noise}: {c.text[:60]}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--first-seed", type=int, default=HELD_OUT_FIRST_SEED)
    parser.add_argument("--detection-time", type=float, default=3.7)
    parser.add_argument("--message-timeout", type=float, default=20.0)
    parser.add_argument("--errors", action="store_true", help="list the cases it got wrong")
    parser.add_argument("--out", type=Path, help="also write the corpus here (WAV + manifest)")
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.count)
    started = time.monotonic()
    corpus = asyncio.run(make_corpus(seeds))
    made = time.monotonic() - started
    if args.out:
        write_corpus(corpus, args.out)
    settings = AmdSettings(args.detection_time, args.message_timeout)
    outcomes = [detect(case, pcm, settings) for case, pcm in corpus]
    report(outcomes, settings, seeds, held_out=args.first_seed >= HELD_OUT_FIRST_SEED)
    print(f"corpus made in {made:.1f} s, detection in {time.monotonic() - started - made:.1f} s")
    if args.errors:
        show_errors(outcomes)


if __name__ == "__main__":
    main()
