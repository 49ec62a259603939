"""Conference recordings with simulated phones, and the conference hooks they (and say/play)
stand on: what is played to a room is heard by every participant, taps see one row per call,
observers hear of joins, leaves and the end before CONFERENCE_FINISHED."""

from __future__ import annotations

import numpy as np

from gateway.app import Gateway
from gateway.media.player import Player
from gateway.testing.audio import tone, tone_level
from tests import test_conferences
from tests.media.test_dialog_audio import heard, run_ticks
from tests.test_conferences import ANSWERS, CONFERENCES, ConferenceApp, phone

app = test_conferences.app
RATE = 8000


async def add_calls(app: ConferenceApp, conference_id: str, size: int) -> list[str]:
    """``size`` new calls into the conference, once every one of them has joined."""
    calls = []
    for _ in range(size):
        added = await app.api.post(
            f"{CONFERENCES}/{conference_id}/call", json={"callRequest": phone(ANSWERS)}
        )
        assert added.status_code == 200, added.text
        call_id = added.json()["call"]["id"]
        await app.wait_conf(conference_id, "PARTICIPANT_JOINED", call_id)
        calls.append(call_id)
    return calls


async def test_a_source_played_to_a_room_is_heard_by_all_and_survives_the_bridge(
    app: ConferenceApp, gateway: Gateway
):
    conferences = gateway.conferences
    conference_id = (await app.conference())["id"]
    beep = Player(tone(1500, 1.0), loops=1000)
    assert conferences.play(conference_id, beep)  # no bridge yet: kept on the room
    assert not conferences.play("no-such-conference", beep)
    seen: list[tuple[str, ...]] = []
    changes: list[tuple[str, str, bool]] = []
    ended: list[tuple[str, bool]] = []
    conferences.tap(conference_id, lambda ids, frames: seen.append(tuple(ids)))
    conferences.observe_participants(lambda *change: changes.append(change))
    conferences.observe_end(lambda cid: ended.append((cid, conferences.get(cid).end_time is None)))

    calls = await add_calls(app, conference_id, 2)
    await run_ticks(gateway, 30)
    for call_id in calls:
        assert tone_level(await heard(app.api, call_id, 0.3), RATE, 1500) > -25
    assert tuple(calls) in seen and conferences.participants(conference_id) == calls
    assert changes == [(conference_id, call_id, True) for call_id in calls]

    conferences.unplay(conference_id, beep)
    await run_ticks(gateway, 10)
    for call_id in calls:
        assert tone_level(await heard(app.api, call_id, 0.1), RATE, 1500) < -50
    await app.api.post(f"{CONFERENCES}/{conference_id}/hangup")
    await app.wait_conf(conference_id, "CONFERENCE_FINISHED")
    assert ended == [(conference_id, True)]  # told before the end was recorded
    assert {c[1] for c in changes if not c[2]} == set(calls)
    assert not conferences.play(conference_id, beep)
    assert np.all(np.array([len(s) for s in seen]) <= 2)
