"""Talk detection: who in a bridge is talking, from the frames the bridge reads each tick.

Energy based and deliberately light: a frame is loud when its level is ``margin_db`` above the
participant's tracked noise floor (and above ``min_level_db``, so near-silence never counts).
The floor follows a quieter level at once and creeps up slowly otherwise, so steady background
noise stops counting as talk while speech, which pauses, keeps the floor low. Hangover keeps
the events calm: talking starts after ``start_frames`` loud frames in a row and stops after
``stop_frames`` quiet ones. One numpy pass per tick covers every participant of a bridge.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from gateway.media.frame import FRAME_MS


@dataclass(frozen=True)
class VadSettings:
    margin_db: float = 12.0
    min_level_db: float = -50.0
    start_frames: int = 60 // FRAME_MS  # 60 ms loud
    stop_frames: int = 500 // FRAME_MS  # 500 ms quiet
    floor_rise_db: float = 1.0 * FRAME_MS / 1000  # 1 dB per second
    floor_min_db: float = -90.0


def frame_levels(frames: np.ndarray, floor_db: float) -> np.ndarray:
    """RMS level of each row in dBFS (a full-scale square wave is 0), never below ``floor_db``."""
    wide = frames.astype(np.float32) / 32768.0
    power = np.mean(wide * wide, axis=1)
    return np.maximum(10 * np.log10(np.maximum(power, 1e-12)), floor_db)


class TalkDetector:
    """Talking or not, per key (a participant), for rows of frames given in ``keys`` order."""

    def __init__(self, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        self._keys: list[Hashable] = []
        self._floor = np.empty(0, np.float32)
        self._loud = np.empty(0, np.int32)  # loud frames in a row
        self._quiet = np.empty(0, np.int32)  # quiet frames in a row
        self._talking = np.empty(0, bool)

    def update(self, keys: Sequence[Hashable], frames: np.ndarray) -> list[tuple[Hashable, bool]]:
        """Feed one tick; returns ``(key, True)`` for each start of talk, ``(key, False)`` for
        each stop."""
        if list(keys) != self._keys:
            self._realign(list(keys))
        s = self.settings
        level = frame_levels(frames, s.floor_min_db)
        self._floor = np.minimum(level, self._floor + s.floor_rise_db)
        loud = level > np.maximum(self._floor + s.margin_db, s.min_level_db)
        self._loud = np.where(loud, self._loud + 1, 0)
        self._quiet = np.where(loud, 0, self._quiet + 1)
        starts = ~self._talking & (self._loud >= s.start_frames)
        stops = self._talking & (self._quiet >= s.stop_frames)
        self._talking ^= starts | stops
        changed = np.flatnonzero(starts | stops)
        return [(self._keys[row], bool(starts[row])) for row in changed]

    def forget(self, key: Hashable) -> bool:
        """Drop a key (its participant left); True if it was talking."""
        if key not in self._keys:
            return False
        talking = bool(self._talking[self._keys.index(key)])
        self._realign([k for k in self._keys if k != key])
        return talking

    def _realign(self, keys: list[Hashable]) -> None:
        """Membership changed: keep each remaining key's state, start new ones quiet."""
        old = {key: row for row, key in enumerate(self._keys)}
        rows = [old.get(key, -1) for key in keys]

        def carry(values: np.ndarray, fresh: float | bool) -> np.ndarray:
            return np.array([values[r] if r >= 0 else fresh for r in rows], values.dtype)

        self._floor = carry(self._floor, self.settings.floor_min_db)
        self._loud = carry(self._loud, 0)
        self._quiet = carry(self._quiet, 0)
        self._talking = carry(self._talking, False)
        self._keys = keys
