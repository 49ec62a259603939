"""Conferences carry audio: every participant hears all the others and never itself (N-1 in
one bridge), muting and deafening act on the mix, up to 15 phones at once, and switching a
phone's tone on and off is reported as talk."""

from __future__ import annotations

import httpx

from gateway.app import Gateway
from gateway.testing.audio import tone_level
from tests import test_conferences
from tests.media.test_dialog_audio import heard, run_ticks
from tests.test_conferences import ANSWERS, CONFERENCES, ConferenceApp, phone

app = test_conferences.app  # the same fixture: a voice app subscribed to conference events
RATE = 8000


async def say(api: httpx.AsyncClient, call_id: str, frequency: float, amplitude: float = 0.3):
    body = {"type": "tone", "frequency": frequency, "amplitude": amplitude}
    answer = await api.put(f"/pstn/1/calls/{call_id}/source", json=body)
    assert answer.status_code == 200, answer.text


async def conference_of(app: ConferenceApp, size: int) -> tuple[str, list[str]]:
    """A conference of ``size`` new calls, once every one of them has joined."""
    conference_id = (await app.conference())["id"]
    calls = []
    for _ in range(size):
        added = await app.api.post(
            f"{CONFERENCES}/{conference_id}/call", json={"callRequest": phone(ANSWERS)}
        )
        assert added.status_code == 200, added.text
        calls.append(added.json()["call"]["id"])
    await app.recorder.wait_for(
        count=size,
        types=["PARTICIPANT_JOINED"],
        predicate=lambda e: e.get("conferenceId") == conference_id,
    )
    return conference_id, calls


async def levels(app: ConferenceApp, call_id: str, tones: dict[str, float]) -> dict[str, float]:
    """How loud each participant's tone is in what ``call_id`` heard over the last 0.5 s."""
    pcm = await heard(app.api, call_id, 0.5)
    return {other: tone_level(pcm, RATE, frequency) for other, frequency in tones.items()}


async def test_three_hear_each_other_mute_and_deaf(app: ConferenceApp, gateway: Gateway):
    conference_id, calls = await conference_of(app, 3)
    tones = dict(zip(calls, (400, 700, 1100), strict=True))
    for call_id, frequency in tones.items():
        await say(app.api, call_id, frequency)
    await run_ticks(gateway, 40)
    for call_id in calls:
        found = await levels(app, call_id, tones)
        assert found.pop(call_id) < -40, "a participant hears itself"
        assert all(level > -30 for level in found.values()), found

    a, b, c = calls
    await app.api.patch(f"{CONFERENCES}/{conference_id}/call/{a}", json={"muted": True})
    await app.api.patch(f"{CONFERENCES}/{conference_id}/call/{b}", json={"deaf": True})
    await run_ticks(gateway, 40)
    at_c = await levels(app, c, tones)
    assert at_c[a] < -40 and at_c[b] > -30  # a is muted, b still heard
    assert all(level < -60 for level in (await levels(app, b, tones)).values())  # deaf
    at_a = await levels(app, a, tones)
    assert at_a[b] > -30 and at_a[c] > -30  # muted, yet it hears

    await app.api.post(f"{CONFERENCES}/{conference_id}/hangup")
    await app.wait_conf(conference_id, "CONFERENCE_FINISHED")
    assert not gateway.media.bridges  # nothing left in the media path


async def test_fifteen_phones_each_hear_the_other_fourteen(app: ConferenceApp, gateway: Gateway):
    conference_id, calls = await conference_of(app, 15)
    tones = {call_id: 300 + 200 * n for n, call_id in enumerate(calls)}  # 300 .. 3100 Hz
    for call_id, frequency in tones.items():
        await say(app.api, call_id, frequency, amplitude=0.05)  # 14 at once never clip
    await run_ticks(gateway, 40)
    for call_id in calls:
        found = await levels(app, call_id, tones)
        assert found.pop(call_id) < -40, f"{call_id} hears itself"
        quiet = {other: level for other, level in found.items() if level <= -30}
        assert not quiet, f"{call_id} does not hear {quiet}"
    await app.api.post(f"{CONFERENCES}/{conference_id}/hangup")


async def test_talking_starts_and_stops(app: ConferenceApp, gateway: Gateway):
    conference_id, (talker, listener) = await conference_of(app, 2)
    await run_ticks(gateway, 10)
    await say(app.api, talker, 500)
    started = await app.wait_conf(conference_id, "PARTICIPANT_STARTED_TALKING", talker)
    assert "properties" not in started  # the spec declares none for talk events
    await app.api.put(f"/pstn/1/calls/{talker}/source", json={"type": "silence"})
    await app.wait_conf(conference_id, "PARTICIPANT_STOPPED_TALKING", talker)
    mine = [
        e["type"]
        for e in app.published()
        if e["type"].startswith("PARTICIPANT_") and e.get("callId") == talker
    ]
    assert mine == [
        "PARTICIPANT_JOINING",
        "PARTICIPANT_JOINED",
        "PARTICIPANT_STARTED_TALKING",
        "PARTICIPANT_STOPPED_TALKING",
    ]
    assert not [e for e in app.published() if e.get("callId") == listener and "TALK" in e["type"]]
    await app.api.post(f"{CONFERENCES}/{conference_id}/hangup")
