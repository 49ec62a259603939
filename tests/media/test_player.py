"""A playback as a frame source: loops, offset and timeout of the first pass, stop."""

from __future__ import annotations

import numpy as np

from gateway.media.player import Player


def ramp(samples: int) -> np.ndarray:
    return np.arange(1, samples + 1, dtype=np.int16)


def drain(player: Player) -> np.ndarray:
    frames = []
    while (frame := player()) is not None:
        frames.append(frame)
    return np.concatenate(frames) if frames else np.zeros(0, np.int16)


def test_a_clip_plays_once_padded_to_whole_frames_then_calls_back_once() -> None:
    done: list[bool] = []
    player = Player(ramp(250), on_done=lambda: done.append(True))
    played = drain(player)
    assert len(played) == 320 and played[:250].tolist() == ramp(250).tolist()
    assert not played[250:].any()
    assert done == [True] and player.finished
    assert player() is None and done == [True]
    assert player.played_ms == 40


def test_loops_play_the_whole_clip_again_after_a_cut_first_pass() -> None:
    clip = ramp(800)  # 100 ms
    player = Player(clip, loops=3, offset_ms=50, timeout_ms=25)
    played = drain(player)
    first = clip[400:600].tolist()
    assert played[:200].tolist() == first  # 25 ms from 50 ms in
    assert played[200:1000].tolist() == clip.tolist()  # later passes are whole
    assert played[1000:1800].tolist() == clip.tolist()
    assert player.total_ms == 225


def test_stop_ends_the_playback_without_the_callback() -> None:
    done: list[bool] = []
    player = Player(ramp(8000), on_done=lambda: done.append(True))
    assert player() is not None
    player.stop()
    assert player() is None and not done and not player.finished
    assert player.played_ms == 20


def test_an_offset_past_the_end_plays_nothing_and_finishes() -> None:
    done: list[bool] = []
    player = Player(ramp(160), offset_ms=500, on_done=lambda: done.append(True))
    assert player() is None and done == [True]
