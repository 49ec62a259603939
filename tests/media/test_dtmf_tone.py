"""The in-band DTMF generator: the right two tones at the asked level, soft edges, and what it
makes is found by the detector (one table each, so a slip in either shows)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.media.dtmf_detect import DtmfDetector
from gateway.media.dtmf_tone import dtmf_samples
from gateway.testing.audio import tone_level

KEYS = {"1": (697, 1209), "5": (770, 1336), "9": (852, 1477), "*": (941, 1209), "D": (941, 1633)}


@pytest.mark.parametrize(("key", "pair"), KEYS.items())
def test_a_key_is_its_row_and_column_tone_at_the_level_asked(
    key: str, pair: tuple[int, int]
) -> None:
    pcm = dtmf_samples(key, 200, level_dbfs=-12.0)
    assert pcm.dtype == np.int16 and len(pcm) == 1600
    for frequency in pair:
        assert tone_level(pcm, 8000, frequency) == pytest.approx(-12.0, abs=0.3)
    others = {697, 770, 852, 941, 1209, 1336, 1477, 1633} - set(pair)
    assert all(tone_level(pcm, 8000, f) < -40 for f in others)


def test_the_edges_ramp_so_there_is_no_click() -> None:
    pcm = dtmf_samples("0", 100).astype(np.int32)
    peak = np.abs(pcm).max()
    assert abs(pcm[0]) < peak * 0.05 and abs(pcm[-1]) < peak * 0.05
    assert np.abs(np.diff(pcm[:8])).max() < peak * 0.5  # rises over the ramp, not at once


def test_lowercase_keys_and_the_wrong_keys() -> None:
    assert np.array_equal(dtmf_samples("a", 50), dtmf_samples("A", 50))
    for wrong in ("E", "", "12", "w"):
        with pytest.raises(ValueError, match="not a DTMF key"):
            dtmf_samples(wrong, 50)


def test_the_detector_finds_every_key_generated() -> None:
    keys = "0123456789*#ABCD"
    gap = np.zeros(400, np.int16)
    pcm = np.concatenate([part for key in keys for part in (dtmf_samples(key, 60), gap)])
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % 160 + 480, np.int16)])
    detector, found = DtmfDetector(), []
    for at in range(0, len(pcm), 160):
        found += detector.update(["leg"], pcm[None, at : at + 160])
    assert "".join(e.digit for e in found if not e.end) == keys
