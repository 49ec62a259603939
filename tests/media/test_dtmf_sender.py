"""Sending a DTMF string frame by frame: in-band tones, RFC 4733 hand-offs, pauses."""

from __future__ import annotations

import numpy as np

from gateway.media.dtmf_sender import DtmfSender, invalid_dtmf
from gateway.testing.audio import dominant_frequency


def run(sender: DtmfSender) -> list[np.ndarray | None]:
    frames = []
    while not sender.finished:
        frames.append(sender())
    return frames


def test_in_band_digits_are_tones_with_gaps_and_pauses_are_silence() -> None:
    done: list[bool] = []
    sender = DtmfSender("1w#", lambda digit: False, lambda: done.append(True))
    frames = run(sender)
    assert len(frames) == 5 + 5 + 25 + 5 + 5  # tone, gap, pause, tone, gap
    tones = [f is not None for f in frames]
    assert tones == [True] * 5 + [False] * 30 + [True] * 5 + [False] * 5
    first = np.concatenate(frames[:5])
    spectrum = np.abs(np.fft.rfft(first.astype(float)))
    peaks = sorted(np.argsort(spectrum)[-2:] * 8000 / len(first))
    assert abs(peaks[0] - 697) < 15 and abs(peaks[1] - 1209) < 15  # the digit 1
    assert abs(dominant_frequency(np.concatenate(frames[35:40]), 8000) - 941) < 15  # '#'
    assert done == [True] and sender.rfc4733 is False


def test_out_of_band_digits_are_handed_to_the_port_at_their_first_frame() -> None:
    sent: list[tuple[int, str]] = []
    frames: list[np.ndarray | None] = []
    sender = DtmfSender("12", lambda digit: sent.append((len(frames), digit)) or True)
    while not sender.finished:
        frames.append(sender())
    assert sent == [(0, "1"), (10, "2")]  # a digit every 200 ms
    assert all(frame is None for frame in frames)  # nothing in-band
    assert sender.rfc4733 is True


def test_what_cannot_be_sent_is_named() -> None:
    assert invalid_dtmf("12*#ABCDwW") is None
    assert invalid_dtmf("") == "must not be empty"
    assert "'xz'" in str(invalid_dtmf("1zx"))
