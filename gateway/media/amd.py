"""Answering machine detection: is the answering side a person or a machine, and when does a
machine's greeting end (its beep, or silence), from the 20 ms frames it sends after answer.

The cues are Asterisk app_amd's (initial silence, greeting length, silence after the
greeting) on a voice-activity segmentation: a person says something short ("Hello?") and then
waits for the caller, so a short greeting followed by silence is HUMAN; a machine talks on
(several sentences with short pauses), so a greeting that goes on longer than people's is
MACHINE, and so is a beep (beep.py). The constants were tuned on the generated corpus
(bench/amd_corpus.py, seeds below 100000); bench/amd_eval.py reports held-out seeds.

* Voice activity: a frame is loud when its level is ``MARGIN_DB`` above the tracked noise
  floor (min-tracking: follows a quieter frame at once, creeps up slowly, so steady noise is
  not speech); speech starts after ``START_FRAMES`` loud frames in a row (clicks are not
  words). The greeting runs from the first speech to the last loud frame so far.
* Over: ``AFTER_GREETING_MS`` of silence ends a greeting: longer than the pauses between a
  machine's sentences (up to ~0.9 s measured), shorter than people wait before speaking again
  (2-4 s). After a greeting under ``SHORT_GREETING_MS`` ("Hello?", shorter than any machine's
  first sentence) ``SHORT_AFTER_MS`` will do. An ended greeting shorter than ``GREETING_MS``
  is HUMAN, a longer one MACHINE.
* Still talking: MACHINE once the greeting reaches ``MACHINE_GREETING_MS`` (1.8 s rather
  than 2.2: 0.3 s sooner at the median for 0.2 % accuracy on the tuning seeds, as the long
  greetings of people it takes for machines are mostly taken so at 2.2 s too); at the deadline
  (``detection_time``) a greeting still going on is MACHINE from ``TALKING_GREETING_MS`` on
  (by then a machine has spoken for ~2.5 s or more; a person still talking is rare).
* No speech at all by the deadline (silence, or steady noise) is HUMAN, with a low
  confidence: a person waiting for the caller to speak first; a machine always plays
  something, and hanging up on a person costs more than an agent hearing silence.
* Confidence grows with the greeting's distance from the middle that decided it.
* The limit: a person's long greeting ("Hello, Smith residence, who's calling?", 2-3 s) is
  as long as a short machine greeting before the deadline, and is mostly taken for MACHINE.
* Message end (after MACHINE only): BEEP with the beep's start; SILENCE after
  ``MESSAGE_SILENCE_MS`` without speech or beep, since a machine's pauses between sentences
  and before its beep are under a second, and a machine with no beep is already recording,
  so waiting longer only loses the message's start; TIMEOUT at ``message_timeout``.

Per frame: one dot product, and for frames above the noise floor one 160-point FFT (beep.py).
No window is recomputed; state is a handful of numbers. Pure numpy, no I/O, never blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gateway.media.beep import BeepDetector
from gateway.media.frame import FRAME_MS, NARROWBAND, samples_per_frame

FRAME = samples_per_frame(NARROWBAND)
MARGIN_DB = 10.0
MIN_SPEECH_DB = -55.0  # nothing quieter is speech (or a beep), whatever the floor
BEEP_MARGIN_DB = 3.0  # a beep is looked for in frames this far above the floor: a tone
# stands out of noise by its spectrum (beep.py) where speech needs loudness
FLOOR_RISE_DB = 1.5 * FRAME_MS / 1000  # per frame: 1.5 dB a second
START_FRAMES = 3
AFTER_GREETING_MS = 1100
SHORT_GREETING_MS, SHORT_AFTER_MS = 800, 700  # "Hello?": a machine's first sentence is longer
GREETING_MS = 2400  # the middle: shorter greetings are people's, longer ones machines'
TALKING_GREETING_MS = 1500  # the middle for a greeting still going on
MACHINE_GREETING_MS = 1800  # a greeting going on this long is MACHINE before the deadline
CONFIDENCE_SCALE_MS = 350.0  # confidence: 73 % this far from the middle, 94 % at twice
SILENCE_CONFIDENCE = 0.65  # HUMAN for an answer that says nothing
MESSAGE_SILENCE_MS = 1800
MIN_DETECTION_TIME, MAX_DETECTION_TIME = 1.0, 5.0
MAX_MESSAGE_TIMEOUT = 60.0
_SINE_POWER = 32767.0**2 / 2  # mean square of a full-scale sine: 0 dBFS


@dataclass(frozen=True)
class AmdSettings:
    detection_time: float = 3.7  # seconds after answer by which a verdict must come
    message_timeout: float | None = None  # None/0: no end-of-message detection

    def __post_init__(self) -> None:
        if not MIN_DETECTION_TIME <= self.detection_time <= MAX_DETECTION_TIME:
            raise ValueError(f"detection_time must be within 1-5 s, not {self.detection_time}")
        if (
            self.message_timeout is not None
            and not 0 <= self.message_timeout <= MAX_MESSAGE_TIMEOUT
        ):
            raise ValueError(f"message_timeout must be within 0-60 s, not {self.message_timeout}")


@dataclass(frozen=True)
class MachineVerdict:
    result: str  # "HUMAN" | "MACHINE"
    confidence: dict[str, float]  # {"HUMAN": p, "MACHINE": 1-p}
    after_ms: int  # audio time since answer when decided


@dataclass(frozen=True)
class MessageEnd:
    result: str  # "BEEP" | "SILENCE" | "TIMEOUT"
    after_ms: int  # for BEEP: when the beep STARTED (ms since answer); else when decided


Event = MachineVerdict | MessageEnd


class MachineDetector:
    """One answered call's detector: ``feed`` it every frame the answering side sends."""

    def __init__(self, settings: AmdSettings) -> None:
        self.settings = settings
        self._deadline_ms = round(settings.detection_time * 1000)
        timeout = settings.message_timeout
        self._timeout_ms = round(timeout * 1000) if timeout else None
        self._now_ms = 0  # audio time after the frames fed so far
        self._floor_db: float | None = None
        self._loud_run = 0
        self._onset_ms: int | None = None  # first speech
        self._speech_end_ms: int | None = None  # end of the last loud frame of speech
        self._beep = BeepDetector()
        self.verdict: MachineVerdict | None = None
        self.message_end: MessageEnd | None = None

    @property
    def finished(self) -> bool:
        """Nothing more will come: the verdict, and the message end if one was asked for
        (HUMAN asks for none)."""
        if self.verdict is None:
            return False
        return (
            self.verdict.result == "HUMAN"
            or self._timeout_ms is None
            or self.message_end is not None
        )

    def feed(self, frame: np.ndarray) -> list[Event]:
        """One 20 ms frame (160 int16 samples, 8 kHz) of what the answering side sends.
        Returns what became known with this frame (usually nothing)."""
        if self.finished:
            return []
        start_ms = self._now_ms
        self._now_ms += FRAME_MS
        x = frame.astype(np.float32)
        above_floor_db = self._listen(x)
        beep_at = self._beep.feed(x, above_floor_db >= BEEP_MARGIN_DB, start_ms)
        events: list[Event] = []
        if self.verdict is None:
            self.verdict = self._decide(beep=beep_at is not None)
            if self.verdict is not None:
                events.append(self.verdict)
        if self.verdict is not None and self.verdict.result == "MACHINE" and not self.finished:
            self.message_end = self._message_end(beep_at)
            if self.message_end is not None:
                events.append(self.message_end)
        return events

    def _listen(self, x: np.ndarray) -> float:
        """Track the noise floor and speech; returns how far above the floor this frame is
        (dB; -inf if below the quietest level anything counts at)."""
        power = float(np.dot(x, x)) / FRAME
        level = 10 * math.log10(max(power / _SINE_POWER, 1e-12))
        floor = level if self._floor_db is None else min(level, self._floor_db + FLOOR_RISE_DB)
        self._floor_db = floor
        loud = level > max(floor + MARGIN_DB, MIN_SPEECH_DB)
        self._loud_run = self._loud_run + 1 if loud else 0
        if self._loud_run >= START_FRAMES:
            if self._onset_ms is None:
                self._onset_ms = self._now_ms - START_FRAMES * FRAME_MS
            self._speech_end_ms = self._now_ms
        return level - floor if level > MIN_SPEECH_DB else -math.inf

    def _decide(self, beep: bool) -> MachineVerdict | None:
        now = self._now_ms
        if beep:
            return _verdict(0.99, now)
        if self._onset_ms is None or self._speech_end_ms is None:
            if now >= self._deadline_ms:
                return _verdict(1 - SILENCE_CONFIDENCE, now)
            return None
        greeting = self._speech_end_ms - self._onset_ms
        silence = now - self._speech_end_ms
        over = SHORT_AFTER_MS if greeting < SHORT_GREETING_MS else AFTER_GREETING_MS
        if silence >= over:
            return _verdict(_p_machine(greeting, GREETING_MS), now)  # the greeting is over
        if greeting >= MACHINE_GREETING_MS or now >= self._deadline_ms:  # still talking
            return _verdict(_p_machine(greeting, TALKING_GREETING_MS), now)
        return None

    def _message_end(self, beep_at: int | None) -> MessageEnd | None:
        now = self._now_ms
        if beep_at is not None:
            return MessageEnd("BEEP", beep_at)
        assert self._timeout_ms is not None
        if now >= self._timeout_ms:
            return MessageEnd("TIMEOUT", now)
        last_sound = self._speech_end_ms if self._speech_end_ms is not None else 0
        if now - last_sound >= MESSAGE_SILENCE_MS:
            return MessageEnd("SILENCE", now)
        return None


def _p_machine(greeting_ms: int, middle_ms: int) -> float:
    """How likely a machine, for a greeting this long where ``middle_ms`` is as likely both."""
    return 1 / (1 + math.exp(-(greeting_ms - middle_ms) / CONFIDENCE_SCALE_MS))


def _verdict(p_machine: float, after_ms: int) -> MachineVerdict:
    p = round(min(max(p_machine, 0.01), 0.99), 3)
    result = "MACHINE" if p >= 0.5 else "HUMAN"
    return MachineVerdict(result, {"HUMAN": round(1 - p, 3), "MACHINE": p}, after_ms)
