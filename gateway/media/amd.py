"""Answering machine detection: is the answering side a person or a machine, and when does a
machine's greeting end (its beep, or silence), from the 20 ms frames it sends after answer.

* Features (amd_features.py): Asterisk app_amd's cues on a voice-activity segmentation
  (initial silence, greeting length, silence since the last word, pauses and the stretches of
  speech between them), the speaking rate and level spread, spectral shape, and whether
  each utterance ended on a rising pitch, as a question does (amd_pitch.py). A person says
  something short ("Hello?") or asks who is calling, then waits; a machine reads sentences,
  ending falling, one after the other with short pauses.
* A small learned classifier (amd_model.py, fitted by bench/amd_train.py on the generated
  corpus's tuning seeds 0-1399, never on the held-out ones) weighs them into the probability
  of a machine, every ``CHECK_MS`` from ``FIRST_CHECK_MS`` on. It decides when that is sure
  enough (under the model's ``human_below``: HUMAN, over ``machine_above``: MACHINE), which
  comes early for "Hello?" followed by silence or a machine's sentences, later for a
  person's long greeting; at the deadline (``detection_time``) it decides at even odds.
* A beep (beep.py) is MACHINE at once.
* No speech at all by the deadline (silence, or steady noise) is HUMAN, with a low
  confidence: a person waiting for the caller to speak first; a machine always plays
  something, and hanging up on a person costs more than an agent hearing silence.
* Confidence: the model's probability.
* Message end (after MACHINE only): BEEP with the beep's start; SILENCE after
  ``MESSAGE_SILENCE_MS`` without speech or beep, since a machine's pauses between sentences
  and before its beep are under a second, and a machine with no beep is already recording,
  so waiting longer only loses the message's start; TIMEOUT at ``message_timeout``.

Per frame: a few dot products (features), and for frames above the noise floor one
160-point FFT (beep.py); every 100 ms before the verdict, two small matrix products; once an
utterance ends, the pitch of its last loud frames. No window is recomputed. Pure numpy, no
I/O after import, never blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.media.amd_features import BEEP_MARGIN_DB, GreetingFeatures
from gateway.media.amd_model import CHECK_MS, FIRST_CHECK_MS, load_model
from gateway.media.beep import BeepDetector

MODEL = load_model()
SILENCE_CONFIDENCE = 0.65  # HUMAN for an answer that says nothing
MESSAGE_SILENCE_MS = 1800
MIN_DETECTION_TIME, MAX_DETECTION_TIME = 1.0, 5.0
MAX_MESSAGE_TIMEOUT = 60.0


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
        self._features = GreetingFeatures()
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
        start_ms = self._features.now_ms  # this frame starts after those fed so far
        x = frame.astype(np.float32)
        above_floor_db = self._features.feed(x, describe=self.verdict is None)
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

    def _decide(self, beep: bool) -> MachineVerdict | None:
        now = self._features.now_ms
        if beep:
            return _verdict(0.99, now)
        deadline = now >= self._deadline_ms
        if not self._features.heard_speech:
            return _verdict(1 - SILENCE_CONFIDENCE, now) if deadline else None
        if not deadline and (now < FIRST_CHECK_MS or now % CHECK_MS):
            return None
        p = MODEL.p_machine(self._features.vector())
        if deadline or p <= MODEL.human_below or p >= MODEL.machine_above:
            return _verdict(p, now)
        return None

    def _message_end(self, beep_at: int | None) -> MessageEnd | None:
        now = self._features.now_ms
        if beep_at is not None:
            return MessageEnd("BEEP", beep_at)
        assert self._timeout_ms is not None
        if now >= self._timeout_ms:
            return MessageEnd("TIMEOUT", now)
        last_sound = self._features.speech_end_ms or 0
        if now - last_sound >= MESSAGE_SILENCE_MS:
            return MessageEnd("SILENCE", now)
        return None


def _verdict(p_machine: float, after_ms: int) -> MachineVerdict:
    p = round(min(max(p_machine, 0.01), 0.99), 3)
    result = "MACHINE" if p >= 0.5 else "HUMAN"
    return MachineVerdict(result, {"HUMAN": round(1 - p, 3), "MACHINE": p}, after_ms)
