"""What a greeting has sounded like so far, as numbers a classifier weighs (amd_model.py).

Fed every 20 ms frame after answer, it keeps running sums only (no window is recomputed):

* voice activity, as Asterisk's app_amd sees it: a noise floor tracked by its minimum (it
  follows a quieter frame at once and creeps up 1.5 dB a second, ``FLOOR_RISE_DB`` a frame,
  so steady noise is not speech; a level steady for a second is taken at once); a frame
  ``MARGIN_DB`` above it is loud and ``START_FRAMES`` loud frames in a row are speech (a click
  is not a word);
* timing: the silence before the first word, how long the greeting has gone on, the silence
  since its last word, its pauses (``PAUSE_MS`` or longer) and the stretches of speech
  between them. A person says a few words and waits; a machine reads sentences one after the
  other with short pauses;
* energy dynamics over speech: the spread of the level and the rate of syllable-like level
  peaks (``PEAK_DB`` up and down again), i.e. the speaking rate;
* spectral shape over speech, from dot products rather than an FFT: the share of high
  frequencies (the power of the signal's first difference over its own, which weighs each
  frequency by 4 sin^2(pi f / 8000)) and the zero-crossing rate;
* intonation (amd_pitch.py): how far the last utterance's end rose, and how many ended
  rising (questions) or not (statements).

``feed(x, describe=False)`` keeps only the voice activity (all the message end needs).
"""

from __future__ import annotations

import math

import numpy as np

from gateway.media.amd_pitch import PitchContour
from gateway.media.frame import FRAME_MS, NARROWBAND, samples_per_frame

FRAME = samples_per_frame(NARROWBAND)
MARGIN_DB = 10.0
BEEP_MARGIN_DB = 3.0  # a beep is looked for in frames this far above the floor: a tone
# stands out of noise by its spectrum (beep.py) where speech needs loudness
MIN_SPEECH_DB = -55.0  # nothing quieter is speech (or a beep), whatever the floor
# A level that stays within STEADY_DB for STEADY_FRAMES (a second) is the line, not a voice
# (speech swings by more between syllables and words): the floor catches up with it at once.
# Without this a floor taken during digital silence (the first moments after answer) would
# make the line's noise, once it comes, speech for most of a minute.
STEADY_DB, STEADY_FRAMES, STEADY_CHECK_MS = 4.0, 50, 200
FLOOR_RISE_DB = 1.5 * FRAME_MS / 1000  # per frame: 1.5 dB a second
START_FRAMES = 3
PAUSE_MS = 160  # a gap in speech this long is a pause (between words or sentences)
PEAK_DB = 4.0  # a syllable: the level rises and falls again this much
_SINE_POWER = 32767.0**2 / 2  # mean square of a full-scale sine: 0 dBFS

NAMES = (
    "time",
    "initial_silence",
    "greeting",
    "silence",
    "speech",
    "pauses",
    "longest_pause",
    "stretch",
    "longest_stretch",
    "syllable_rate",
    "level_spread",
    "high_share",
    "crossings",
    "end_rise",
    "rising_ends",
    "falling_ends",
)
QUESTION_RISE = 1.5  # semitones: an utterance ending this much above its low asked a question


class GreetingFeatures:
    """Feed every frame (float32) in order; ``vector`` is the greeting so far (``NAMES``)."""

    def __init__(self) -> None:
        self.now_ms = 0
        self._floor_db: float | None = None
        self._recent = np.full(STEADY_FRAMES, -math.inf)  # the last second's levels, a ring
        self._recent_at = 0
        self._loud_run = 0
        self.onset_ms: int | None = None  # first speech
        self.speech_end_ms: int | None = None  # end of the last loud frame of speech
        self._stretch_start_ms = 0  # where the current stretch of speech began
        self._longest_stretch_ms = 0
        self._pauses = 0
        self._longest_pause_ms = 0
        self._speech_frames = 0
        self._level_sum = self._level_square_sum = 0.0
        self._peaks = 0
        self._rising = True
        self._extreme_db = -math.inf  # the high while rising, the low while falling
        self._high_sum = self._crossing_sum = 0.0
        self._pitch = PitchContour()  # of the current utterance
        self._previous_rise = 0.0  # of the last utterance that ended before it
        self._rising_ends = self._falling_ends = 0

    def feed(self, x: np.ndarray, describe: bool = True) -> float:
        """One frame; returns how far above the noise floor it is (dB; -inf if below the
        quietest level anything counts at). ``describe``: work out more than voice activity."""
        self.now_ms += FRAME_MS
        power = float(np.dot(x, x)) / FRAME
        level = 10 * math.log10(max(power / _SINE_POWER, 1e-12))
        floor = level if self._floor_db is None else min(level, self._floor_db + FLOOR_RISE_DB)
        recent = self._recent
        recent[self._recent_at] = level
        self._recent_at = (self._recent_at + 1) % STEADY_FRAMES
        # Looked at five times a second, and only while the frame stands out of the floor.
        if level > floor + MARGIN_DB and self.now_ms % STEADY_CHECK_MS == 0:
            low = float(recent.min())
            if low > floor + MARGIN_DB and float(recent.max()) - low < STEADY_DB:
                floor = low
        self._floor_db = floor
        loud = level > max(floor + MARGIN_DB, MIN_SPEECH_DB)
        self._loud_run = self._loud_run + 1 if loud else 0
        if not describe:
            if self._loud_run >= START_FRAMES:
                self.speech_end_ms = self.now_ms
        else:
            self._pitch.feed(x, self._loud_run >= START_FRAMES)
            if self.onset_ms is not None:
                self._syllables(max(level, floor + MARGIN_DB / 2))
            if self._loud_run >= START_FRAMES:
                self._speech(x, level, power)
        return level - floor if level > MIN_SPEECH_DB else -math.inf

    def _speech(self, x: np.ndarray, level: float, power: float) -> None:
        start_ms = self.now_ms - START_FRAMES * FRAME_MS
        if self.onset_ms is None:
            self.onset_ms = self._stretch_start_ms = start_ms
        elif self._loud_run == START_FRAMES and self.speech_end_ms is not None:
            pause = start_ms - self.speech_end_ms
            if pause >= PAUSE_MS:
                self._previous_rise = rise = self._pitch.rise()
                if rise >= QUESTION_RISE:
                    self._rising_ends += 1
                else:
                    self._falling_ends += 1
                self._pitch.restart()
                self._pauses += 1
                self._longest_pause_ms = max(self._longest_pause_ms, pause)
                self._stretch_start_ms = start_ms
        self.speech_end_ms = self.now_ms
        self._longest_stretch_ms = max(
            self._longest_stretch_ms, self.now_ms - self._stretch_start_ms
        )
        self._speech_frames += 1
        self._level_sum += level
        self._level_square_sum += level * level
        difference = x[1:] - x[:-1]
        self._high_sum += float(np.dot(difference, difference)) / (FRAME - 1) / (power + 1.0)
        negative = np.signbit(x)
        self._crossing_sum += np.count_nonzero(negative[1:] != negative[:-1]) / (FRAME - 1)

    def _syllables(self, level: float) -> None:
        """Count level peaks with hysteresis: up, then ``PEAK_DB`` down, is one."""
        if self._rising:
            if level > self._extreme_db:
                self._extreme_db = level
            elif level < self._extreme_db - PEAK_DB:
                self._peaks += 1
                self._rising, self._extreme_db = False, level
        elif level < self._extreme_db:
            self._extreme_db = level
        elif level > self._extreme_db + PEAK_DB:
            self._rising, self._extreme_db = True, level

    @property
    def heard_speech(self) -> bool:
        return self.onset_ms is not None

    def vector(self) -> np.ndarray:
        """The greeting so far, in seconds and ratios, in the order of ``NAMES``."""
        now = self.now_ms / 1000
        if self.onset_ms is None or self.speech_end_ms is None:
            return np.array([now, now] + [0.0] * (len(NAMES) - 2))
        onset, end = self.onset_ms / 1000, self.speech_end_ms / 1000
        frames = max(self._speech_frames, 1)
        speech = self._speech_frames * FRAME_MS / 1000
        mean = self._level_sum / frames
        spread = math.sqrt(max(self._level_square_sum / frames - mean * mean, 0.0))
        rise, rising, falling = self._previous_rise, self._rising_ends, self._falling_ends
        if self.now_ms - self.speech_end_ms >= PAUSE_MS:  # the current utterance has ended
            rise = self._pitch.rise()
            rising, falling = (
                (rising + 1, falling) if rise >= QUESTION_RISE else (rising, falling + 1)
            )
        return np.array(
            [
                now,
                onset,
                end - onset,
                now - end,
                speech,
                self._pauses,
                self._longest_pause_ms / 1000,
                end - self._stretch_start_ms / 1000,
                self._longest_stretch_ms / 1000,
                self._peaks / max(end - onset, 0.2),
                spread,
                self._high_sum / frames,
                self._crossing_sum / frames,
                rise,
                rising,
                falling,
            ]
        )
