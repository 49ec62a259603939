"""Ringback generation (``ringbackGeneration``) with simulated phones: what callers and
conference participants heard while a call rang (our tone by FFT, its cadence, not the remote
early media), what they heard once it answered, the events' order, the cases where the option
is ignored, and that nothing of the tone is left once it stopped. The tone source's own frames
are checked for every national cadence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.app import Gateway
from gateway.core.bridging import MediaPath
from gateway.core.leg import Leg, LegState
from gateway.media.plane import FrameSource
from gateway.media.ringback import FRAME, TONES, Ringback, ringback_tone
from gateway.settings import Settings, load_settings
from gateway.testing.app import CALL_EVENTS, phone_heard, prepare_app
from gateway.testing.audio import dominant_frequency, read_wav, tone_level
from gateway.testing.webhook_recorder import WebhookRecorder
from tests.sip.baresip import Account, Baresip
from tests.sip.sipp import running_world
from tests.sip.test_bypass import (
    CALLEE_TONE,
    CALLER_TONE,
    Phones,
    hang_up,
    needs_baresip,
    path_becomes,
)
from tests.sip.test_bypass import phone as sip_phone
from tests.test_conferences import CONFERENCE_EVENTS, CONFERENCES, ConferenceApp, phone
from tests.test_dialogs import CONFIG, DIALOG_EVENTS, DID

RATE = 8000
FRAME_S = 0.02
CALLER_HZ = 600.0  # what the simulated caller (or existing participant) says
CALLEE_HZ = 1000.0  # what the dialled phone says once it answers
ANNOUNCEMENT_HZ = 440.0  # the dialled phone's own early media, which ringback overrides
EU_HZ = 425.0

ANNOUNCES = "15550200001"  # early media (no ringing) for 5.6 s, then answers
RINGS = "15550200002"  # rings 1.2 s, then answers
RINGS_LONGER = "15550200003"  # rings 2.5 s, then answers
REJECTS = "15550200004"  # rings, rejects after 0.8 s
SILENT = "15550200005"  # rings for ever
RINGS_LATE = "15550200006"  # rings after 1.5 s, for ever
ANSWERING = {"source": {"type": "tone", "frequency": CALLEE_HZ}}
NUMBERS: dict[str, tuple[str, dict[str, Any]]] = {
    ANNOUNCES: (
        "early-media",
        {"earlyMediaMs": 5600, "announcementHz": int(ANNOUNCEMENT_HZ), **ANSWERING},
    ),
    RINGS: ("answer", {"answerAfterMs": 1200, **ANSWERING}),
    RINGS_LONGER: ("answer", {"answerAfterMs": 2500, **ANSWERING}),
    REJECTS: ("reject", {"delayMs": 800}),
    SILENT: ("no-answer", {}),
    RINGS_LATE: ("no-answer", {"ringAfterMs": 1500}),
}
RINGBACK = {"ringbackGeneration": {"enabled": True}}


# -- the tone source --------------------------------------------------------------------------


def on_off(frames: list[np.ndarray | None]) -> list[tuple[bool, int]]:
    """The cadence the frames make: (tone?, ms) runs."""
    runs: list[tuple[bool, int]] = []
    for frame in frames:
        on = frame is not None
        if runs and runs[-1][0] == on:
            runs[-1] = (on, runs[-1][1] + 20)
        else:
            runs.append((on, 20))
    return runs


@pytest.mark.parametrize(
    ("name", "frequencies", "cadence"),
    [
        ("eu", (425.0,), [1000, 4000]),
        ("us", (440.0, 480.0), [2000, 4000]),
        ("uk", (400.0, 450.0), [400, 200, 400, 2000]),
    ],
)
def test_each_tone_rings_its_frequencies_on_its_cadence(
    name: str, frequencies: tuple[float, ...], cadence: list[int]
):
    ringback = Ringback(ringback_tone(name))
    period = sum(cadence) // 20
    frames = [ringback() for _ in range(2 * period)]
    expected = [(index % 2 == 0, ms) for index, ms in enumerate(cadence)] * 2
    assert on_off(frames) == expected
    played = [frame for frame in frames[:period] if frame is not None]
    assert all(frame.dtype == np.int16 and frame.shape == (FRAME,) for frame in played)
    burst = np.concatenate(played[: 400 // 20]).astype(np.float64)  # the first 400 ms
    for frequency in frequencies:  # each component near -16 dBFS (one tone: -10.5)
        assert tone_level(burst, RATE, frequency) > -17, frequency
    for absent in {425.0, 400.0, 440.0, 450.0, 480.0} - set(frequencies):
        assert tone_level(burst, RATE, absent) < -40, absent
    if len(frequencies) == 1:
        assert abs(dominant_frequency(burst, RATE) - frequencies[0]) < 1
    ringback.stop()
    assert ringback() is None


def test_the_ringback_setting_chooses_the_tone_and_refuses_unknown_names():
    assert load_settings(environ={}).ringback_tone == "eu"
    assert load_settings(environ={"GATEWAY_RINGBACK_TONE": "us"}).ringback_tone == "us"
    assert ringback_tone("UK") is TONES["uk"]
    with pytest.raises(ValueError, match=r"ringback_tone 'fr' .*eu, uk, us"):
        load_settings(environ={"GATEWAY_RINGBACK_TONE": "fr"})
    with pytest.raises(ValueError, match="ringback_tone"):
        Settings(ringback_tone="")


# -- calls ------------------------------------------------------------------------------------


class RingbackApp(ConferenceApp):
    def __init__(self, api: httpx.AsyncClient, recorder: WebhookRecorder, gw: Gateway) -> None:
        super().__init__(api, recorder)
        self.gateway = gw
        self.plays: list[tuple[float, str]] = []  # (loop time, leg) of each ringback started
        self.rings: dict[str, float] = {}  # leg: loop time of its first ring or early media
        dialogs = gw.dialogs
        play = dialogs.on_play
        assert play is not None

        def on_play(leg: Leg, source: FrameSource) -> object:
            self.plays.append((asyncio.get_running_loop().time(), leg.id))
            return play(leg, source)

        def on_event(leg: Leg, event: str) -> None:
            if event in ("CALL_RINGING", "CALL_PRE_ESTABLISHED"):
                self.rings.setdefault(leg.id, asyncio.get_running_loop().time())

        dialogs.on_play = on_play
        gw.calls.observe(on_event)

    async def heard(self, call_id: str) -> np.ndarray:
        return await phone_heard(self.api, call_id)

    async def hears(self, call_id: str, frequency: float, seconds: float = 0.4) -> np.ndarray:
        """Wait until the phone's last ``seconds`` are ``frequency`` (and nothing of our
        ringback); everything it heard."""
        tail = int(seconds * RATE)

        async def check() -> np.ndarray | None:
            pcm = await self.heard(call_id)
            if len(pcm) < tail or not loud(pcm[-tail:]).all():  # heard throughout
                return None
            last = pcm[-tail:]
            ok = abs(dominant_frequency(last, RATE) - frequency) < 3
            return pcm if ok and tone_level(last, RATE, EU_HZ) < -40 else None

        return await poll(check, 10)

    async def speak(self, call_id: str, frequency: float) -> None:
        source = {"type": "tone", "frequency": frequency}
        spoken = await self.api.put(f"/pstn/1/calls/{call_id}/source", json=source)
        assert spoken.status_code == 200, spoken.text

    async def caller(self) -> str:
        call_id = await self.inbound()
        await self.speak(call_id, CALLER_HZ)
        return call_id

    async def ringback_dialog(self, number: str, until: str | None) -> tuple[str, str, str]:
        """A caller, and a dialog with ringback from it to ``number``, followed until the
        dialog event ``until`` (None: not waited for): the dialog's, parent's, child's ids."""
        parent = await self.caller()
        created = await self.dialog(parent, number, propagationOptions=RINGBACK)
        dialog_id, child = created["id"], created["childCall"]["id"]
        if until is not None:
            await self.wait(dialog_id, until)
        return dialog_id, parent, child

    def ringback_delay(self, child: str, after: str) -> float:
        """How soon after the child's first ring the one ringback started (checked < 0.25 s)."""
        ((started, _),) = self.plays
        delay = started - self.rings[child]
        print(f"ringback started {delay * 1000:.1f} ms after the child's {after}")
        assert 0 <= delay < 0.25
        return delay

    async def hang_up(self, call_id: str) -> None:
        """The simulated phone hangs up."""
        hung_up = await self.api.post(f"/pstn/1/calls/{call_id}/hangup")
        assert hung_up.status_code == 200, hung_up.text

    async def heard_for(self, call_id: str, seconds: float) -> np.ndarray:
        """What the phone heard, once it has heard at least ``seconds``."""

        async def check() -> np.ndarray | None:
            pcm = await self.heard(call_id)
            return pcm if len(pcm) >= seconds * RATE else None

        return await poll(check, 10)

    async def quiet(self) -> None:
        """Nothing of a ringback is left: no dialog, task, source, overlay or bridge."""
        gw = self.gateway
        await poll(lambda: not gw.dialogs._active and not gw.conferences._rooms, 5)
        async with asyncio.timeout(5):
            await asyncio.gather(*gw.dialogs._tasks, *gw.conferences._tasks)
            await gw.bridges.settled()
        assert not gw.dialogs._tasks and not gw.conferences._tasks
        assert not gw.bridges._sources and not gw.bridges._groups
        assert not gw.media.bridges  # no bridge, so no overlay, is ticked any more


async def poll(check: Callable[[], Any], timeout: float) -> Any:
    """The first truthy answer of ``check`` (a function or coroutine function)."""
    async with asyncio.timeout(timeout):
        while True:
            found = check()
            if asyncio.iscoroutine(found):
                found = await found
            if found is not None and found is not False:
                return found
            await asyncio.sleep(0.05)


@pytest.fixture
async def app(api: httpx.AsyncClient, gateway: Gateway) -> AsyncIterator[RingbackApp]:
    async with WebhookRecorder() as recorder:
        events = [*CALL_EVENTS, *DIALOG_EVENTS, *CONFERENCE_EVENTS]
        await prepare_app(
            api, recorder.url, CONFIG, numbers=[DID], events=events, simulated=NUMBERS
        )
        yield RingbackApp(api, recorder, gateway)


def loud(pcm: np.ndarray) -> np.ndarray:
    """Per 20 ms frame: is anything heard?"""
    frames = pcm[: len(pcm) // FRAME * FRAME].reshape(-1, FRAME)
    return np.sqrt((frames**2).mean(axis=1)) > 300


def span(pcm: np.ndarray, start: float, end: float) -> np.ndarray:
    return pcm[int(start * RATE) : int(end * RATE)]


async def test_caller_hears_our_ringback_in_place_of_the_early_media_then_the_callee(
    app: RingbackApp,
):
    dialog_id, parent, child = await app.ringback_dialog(ANNOUNCES, "DIALOG_ESTABLISHED")
    assert app.flow(parent, child) == [
        "CALL_RECEIVED parent",
        "DIALOG_CREATED",
        "CALL_STARTED child",
        "CALL_PRE_ESTABLISHED child",
        "CALL_PRE_ESTABLISHED parent",
        "CALL_ESTABLISHED child",
        "CALL_ESTABLISHED parent",
        "DIALOG_ESTABLISHED",
    ]
    ((_, played_to),) = app.plays
    assert played_to == parent
    app.ringback_delay(child, "early media")

    heard = await app.hears(parent, CALLEE_HZ)
    assert (await app.hears(child, CALLER_HZ)) is not None
    # The parent's audio starts with the tone's first frame: 1 s on, 4 s off, on again until
    # the callee answered (5.6 s); the callee's announcement is never heard.
    first_on, off, second_on = (
        span(heard, 0.05, 0.95),
        span(heard, 1.1, 4.9),
        span(heard, 5.05, 5.5),
    )
    for burst in (first_on, second_on):
        assert abs(dominant_frequency(burst, RATE) - EU_HZ) < 2
        assert tone_level(burst, RATE, EU_HZ) > -14
    assert not loud(off).any()
    assert tone_level(span(heard, 0, 5.5), RATE, ANNOUNCEMENT_HZ) < -40
    on = loud(span(heard, 0, 5.0))
    assert 48 <= on.sum() <= 51  # one second of tone in the first period

    await app.hang_up(parent)
    await app.wait(dialog_id, "DIALOG_FINISHED")
    await app.quiet()


async def test_ringback_starts_at_the_first_ring_and_stops_when_the_callee_answers(
    app: RingbackApp,
):
    dialog_id, parent, child = await app.ringback_dialog(RINGS, "DIALOG_ESTABLISHED")
    assert app.flow(parent, child) == [
        "CALL_RECEIVED parent",
        "DIALOG_CREATED",
        "CALL_STARTED child",
        "CALL_RINGING child",
        "CALL_PRE_ESTABLISHED parent",
        "CALL_ESTABLISHED child",
        "CALL_ESTABLISHED parent",
        "DIALOG_ESTABLISHED",
    ]
    delay = app.ringback_delay(child, "CALL_RINGING")
    heard = await app.hears(parent, CALLEE_HZ)
    assert tone_level(span(heard, 0.05, 0.95), RATE, EU_HZ) > -14
    # Off after the burst until the callee, who answered 1.2 s after its ring: the parent's
    # audio began with our tone, ``delay`` after that ring.
    answered = onset(heard, after=1.0)
    assert answered > 1.2 - delay - 0.1
    assert (
        abs(dominant_frequency(span(heard, answered + 0.05, answered + 0.35), RATE) - CALLEE_HZ) < 3
    )
    await app.hears(child, CALLER_HZ)
    await app.hang_up(child)
    await app.wait(dialog_id, "DIALOG_FINISHED")
    await app.quiet()


async def test_a_ringback_the_media_plane_fails_to_play_leaves_nothing_behind(
    app: RingbackApp,
):
    """The plane took the tone, then raised: the dialog goes on without it, and takes the
    tone back each time, so nothing of it is left when the call ends."""
    play = app.gateway.dialogs.on_play
    assert play is not None

    def failing(leg: Leg, source: FrameSource) -> object:
        play(leg, source)
        raise RuntimeError("the media plane failed")

    app.gateway.dialogs.on_play = failing
    dialog_id, parent, child = await app.ringback_dialog(RINGS, "DIALOG_ESTABLISHED")
    assert not app.gateway.bridges._sources.get(parent)  # no tone over the callee
    await app.hears(parent, CALLEE_HZ)
    await app.hang_up(child)
    await app.wait(dialog_id, "DIALOG_FINISHED")
    await app.quiet()


async def test_ringback_stops_when_the_callee_rejects_and_the_dialog_fails(app: RingbackApp):
    _, parent, child = await app.ringback_dialog(REJECTS, "DIALOG_FAILED")
    assert app.flow(parent, child) == [
        "CALL_RECEIVED parent",
        "DIALOG_CREATED",
        "CALL_STARTED child",
        "CALL_RINGING child",
        "CALL_PRE_ESTABLISHED parent",
        "CALL_FAILED child",
        "CALL_FAILED parent",
        "DIALOG_FAILED",
    ]
    heard = await app.heard(parent)
    assert tone_level(span(heard, 0.05, 0.6), RATE, EU_HZ) > -14
    assert loud(heard).sum() < 45  # cut at the rejection (0.8 s), before its 1 s burst ended
    await app.quiet()


async def test_ringback_stops_when_the_caller_hangs_up_while_it_rings(app: RingbackApp):
    dialog_id, parent, child = await app.ringback_dialog(SILENT, None)
    await poll(lambda: _tail_level(app, parent, EU_HZ, 0.3), 5)
    ringback = app.gateway.dialogs._by_leg[parent].tone
    assert ringback is not None

    await app.hang_up(parent)
    failed = await app.wait(dialog_id, "DIALOG_FAILED")
    assert failed["properties"]["hangupSource"] == "PARENT_ENDPOINT"
    assert ringback.stopped
    tail = ["CALL_PRE_ESTABLISHED parent", "CALL_FAILED parent", "CALL_FAILED child"]
    assert app.flow(parent, child)[-4:] == [*tail, "DIALOG_FAILED"]
    await app.quiet()


async def test_ringback_of_a_dialog_of_existing_calls_goes_on_when_the_app_answers_the_caller(
    app: RingbackApp,
):
    parent = await app.caller()
    child = await app.outbound(RINGS_LONGER, parent=parent, until="CALL_RINGING")
    joined = await app.api.post(
        f"/calls/1/dialogs/parent-call/{parent}/child-call/{child}",
        json={"propagationOptions": RINGBACK},
    )
    assert joined.status_code == 201, joined.text
    dialog_id = joined.json()["id"]
    await app.recorder.wait_for(types=["CALL_PRE_ESTABLISHED"], call_id=parent)
    ringback = app.gateway.dialogs._by_leg[parent].tone
    assert ringback is not None

    answered = await app.api.post(f"/calls/1/calls/{parent}/answer", json={})
    assert answered.status_code == 200, answered.text
    await app.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=parent)
    assert app.gateway.dialogs._by_leg[parent].tone is ringback and not ringback.stopped
    rung = ringback.frames
    await poll(lambda: ringback.frames > rung + 5, 5)  # it still rings, answered

    await app.wait(dialog_id, "DIALOG_ESTABLISHED")
    assert ringback.stopped
    heard = await app.hears(parent, CALLEE_HZ)
    assert tone_level(span(heard, 0.05, 0.95), RATE, EU_HZ) > -14
    await app.hang_up(parent)
    await app.wait(dialog_id, "DIALOG_FINISHED")
    await app.quiet()


@pytest.mark.parametrize("parent_kind", ["outbound", "answered"])
async def test_ringback_is_ignored_for_a_parent_that_is_outbound_or_answered(
    app: RingbackApp, parent_kind: str
):
    if parent_kind == "outbound":
        parent = await app.outbound(RINGS)
    else:
        parent = await app.caller()
        answered = await app.api.post(f"/calls/1/calls/{parent}/answer", json={})
        assert answered.status_code == 200, answered.text
        await app.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=parent)
    await app.speak(parent, CALLER_HZ)
    created = await app.dialog(parent, ANNOUNCES, propagationOptions=RINGBACK)
    dialog_id, child = created["id"], created["childCall"]["id"]
    await app.recorder.wait_for(types=["CALL_PRE_ESTABLISHED"], call_id=child)
    # As without the option: the callee's early media is passed on, no tone of ours.
    heard = await app.heard_for(parent, 1.0)
    early = heard[-int(0.8 * RATE) :]
    assert abs(dominant_frequency(early, RATE) - ANNOUNCEMENT_HZ) < 3
    assert tone_level(heard, RATE, EU_HZ) < -40
    assert app.plays == []
    hung_up = await app.api.post(f"/calls/1/dialogs/{dialog_id}/hangup")
    assert hung_up.status_code == 200, hung_up.text
    await app.wait(dialog_id, "DIALOG_FAILED")
    await app.quiet()


# -- conferences ------------------------------------------------------------------------------


def onset(pcm: np.ndarray, after: float = 0.0) -> float:
    """When the first thing was heard (s), from ``after`` on."""
    frames = loud(pcm[int(after * RATE) :])
    assert frames.any(), "nothing heard"
    return after + float(np.argmax(frames)) * FRAME_S


async def answered_caller(app: RingbackApp) -> str:
    call_id = await app.caller()
    answered = await app.api.post(f"/calls/1/calls/{call_id}/answer", json={})
    assert answered.status_code == 200, answered.text
    await app.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
    return call_id


async def room_with(app: RingbackApp, call_id: str) -> str:
    conference_id = (await app.conference())["id"]
    await app.add(conference_id, call_id)
    await app.wait_conf(conference_id, "PARTICIPANT_JOINED", call_id)
    return conference_id


async def ring_into(app: RingbackApp, conference_id: str, number: str) -> str:
    """Add a new call to ``number`` to the room, with ringback: the new call's id."""
    request = {"callRequest": phone(number), **RINGBACK}
    added = await app.api.post(f"{CONFERENCES}/{conference_id}/call", json=request)
    assert added.status_code == 200, added.text
    return added.json()["call"]["id"]


async def hang_up_room(app: RingbackApp, conference_id: str) -> None:
    hung_up = await app.api.post(f"{CONFERENCES}/{conference_id}/hangup")
    assert hung_up.status_code == 200, hung_up.text
    await app.wait_conf(conference_id, "CONFERENCE_FINISHED")


def ringing_in(app: RingbackApp, conference_id: str) -> bool:
    room = app.gateway.conferences._rooms.get(conference_id)
    return room is not None and room.ringback is not None


@pytest.mark.parametrize("how", ["add-new-call", "connect-with-new-call"])
async def test_participants_hear_ringback_while_the_new_call_rings_then_hear_it(
    app: RingbackApp, how: str
):
    existing = await answered_caller(app)
    request = {"callRequest": phone(RINGS_LONGER), **RINGBACK}
    if how == "add-new-call":
        conference_id = await room_with(app, existing)
        added = await app.api.post(f"{CONFERENCES}/{conference_id}/call", json=request)
    else:
        added = await app.api.post(f"/calls/1/calls/{existing}/connect", json=request)
    assert added.status_code == 200, added.text
    conference_id, new = added.json()["conference"]["id"], added.json()["call"]["id"]
    await app.wait_conf(conference_id, "PARTICIPANT_JOINED", new)
    assert not ringing_in(app, conference_id)  # stopped as the new call joined
    assert not app.gateway.conferences._rooms[conference_id].overlays
    assert app.steps({existing: "existing", new: "new"})[-5:] == [
        "CALL_STARTED new",
        "CALL_RINGING new",
        "CALL_ESTABLISHED new",
        "PARTICIPANT_JOINING new",
        "PARTICIPANT_JOINED new",
    ]

    heard = await app.hears(existing, CALLEE_HZ)  # the new participant, once joined
    start = onset(heard)  # our ringback's first frame, at the new call's first ring
    assert abs(dominant_frequency(span(heard, start + 0.05, start + 0.95), RATE) - EU_HZ) < 2
    assert tone_level(span(heard, start + 0.05, start + 0.95), RATE, EU_HZ) > -14
    # Off after the burst, until the new call joined (2.5 s after its first ring): what is
    # heard next is the new participant (a fixed window up to 2.3 s failed once in a combined
    # run on a loaded machine: the bound is loose).
    resumed = onset(heard, after=start + 1.0)
    assert resumed - start > 2.0
    assert (
        abs(dominant_frequency(span(heard, resumed + 0.05, resumed + 0.35), RATE) - CALLEE_HZ) < 3
    )
    new_heard = await app.hears(new, CALLER_HZ)  # the new call never hears the ringback
    assert tone_level(new_heard, RATE, EU_HZ) < -40

    await hang_up_room(app, conference_id)
    await app.quiet()


async def test_two_ringing_calls_ring_the_room_until_the_last_one_joins(app: RingbackApp):
    existing = await answered_caller(app)
    conference_id = await room_with(app, existing)
    added = []
    for number in (RINGS, RINGS_LONGER):
        added.append(await ring_into(app, conference_id, number))
    first, second = added
    await app.wait_conf(conference_id, "PARTICIPANT_JOINED", first)
    assert ringing_in(app, conference_id)  # the second still rings
    await app.wait_conf(conference_id, "PARTICIPANT_JOINED", second)
    assert not ringing_in(app, conference_id)
    assert not app.gateway.conferences._rooms[conference_id].overlays

    await hang_up_room(app, conference_id)
    await app.quiet()


async def test_ringback_stops_when_the_room_is_hung_up_while_a_call_rings(app: RingbackApp):
    existing = await answered_caller(app)
    conference_id = await room_with(app, existing)
    await ring_into(app, conference_id, SILENT)
    await poll(lambda: _tail_level(app, existing, EU_HZ, 0.3), 5)

    await hang_up_room(app, conference_id)
    await app.quiet()


async def test_ringback_stops_when_the_new_call_fails(app: RingbackApp):
    existing = await answered_caller(app)
    conference_id = await room_with(app, existing)
    new = await ring_into(app, conference_id, REJECTS)
    await app.wait_conf(conference_id, "PARTICIPANT_JOIN_FAILED", new)
    assert not ringing_in(app, conference_id)
    assert not app.gateway.conferences._rooms[conference_id].overlays
    so_far = len(await app.heard(existing)) / RATE
    heard = await app.heard_for(existing, so_far + 0.5)
    start = onset(heard)
    assert tone_level(span(heard, start + 0.05, start + 0.6), RATE, EU_HZ) > -14
    assert 0.5 < loud(heard).sum() * FRAME_S < 0.95  # cut at the rejection (0.8 s)

    await app.hang_up(existing)
    await app.wait_conf(conference_id, "CONFERENCE_FINISHED")
    await app.quiet()


async def placed_call(app: RingbackApp, number: str) -> str:
    """An outbound call of no dialog or conference, just placed (CALL_STARTED)."""
    return await app.outbound(number, until="")


async def test_an_existing_call_added_before_it_rings_rings_the_room_until_removed(
    app: RingbackApp,
):
    existing = await answered_caller(app)
    conference_id = await room_with(app, existing)
    ringing = await placed_call(app, RINGS_LATE)
    assert app.gateway.calls.get(ringing).state is LegState.CALLING  # it rings 1.5 s on

    added = await app.api.put(f"{CONFERENCES}/{conference_id}/call/{ringing}", json=RINGBACK)
    assert added.status_code == 200, added.text
    assert not ringing_in(app, conference_id)  # not before its first ring
    await app.recorder.wait_for(types=["CALL_RINGING"], call_id=ringing)
    assert ringing_in(app, conference_id)
    await poll(lambda: _tail_level(app, existing, EU_HZ, 0.3), 5)
    removed = await app.api.delete(f"{CONFERENCES}/{conference_id}/call/{ringing}")
    assert removed.status_code == 200, removed.text
    await app.wait_conf(conference_id, "PARTICIPANT_JOIN_FAILED", ringing)
    assert not ringing_in(app, conference_id)
    assert not app.gateway.conferences._rooms[conference_id].overlays

    hung_up = await app.api.post(f"/calls/1/calls/{ringing}/hangup", json={})
    assert hung_up.status_code == 200, hung_up.text
    await app.hang_up(existing)
    await app.wait_conf(conference_id, "CONFERENCE_FINISHED")
    await app.quiet()


async def test_an_existing_call_added_once_it_rings_gets_no_ringback(app: RingbackApp):
    """The Calls API: once the remote ringback has started, no local ringback is applied."""
    existing = await answered_caller(app)
    conference_id = await room_with(app, existing)
    ringing = await placed_call(app, SILENT)
    await app.recorder.wait_for(types=["CALL_RINGING"], call_id=ringing)

    added = await app.api.put(f"{CONFERENCES}/{conference_id}/call/{ringing}", json=RINGBACK)
    assert added.status_code == 200, added.text
    so_far = len(await app.heard(existing)) / RATE
    heard = await app.heard_for(existing, so_far + 1.2)
    assert not loud(heard[int(so_far * RATE) :]).any()  # the room stays silent
    assert not ringing_in(app, conference_id)
    assert not app.gateway.conferences._rooms[conference_id].overlays

    hung_up = await app.api.post(f"/calls/1/calls/{ringing}/hangup", json={})
    assert hung_up.status_code == 200, hung_up.text
    await app.wait_conf(conference_id, "PARTICIPANT_JOIN_FAILED", ringing)
    await app.hang_up(existing)
    await app.wait_conf(conference_id, "CONFERENCE_FINISHED")
    await app.quiet()


async def _tail_level(app: RingbackApp, call_id: str, frequency: float, seconds: float) -> bool:
    """The phone's last ``seconds`` hold ``frequency`` loudly."""
    pcm = await app.heard(call_id)
    tail = int(seconds * RATE)
    return len(pcm) >= tail and tone_level(pcm[-tail:], RATE, frequency) > -14


# -- SIP: the ringing caller is mixed alone, then the answered dialog is bypassed -------------


@needs_baresip
async def test_a_sip_caller_hears_ringback_mixed_alone_then_the_dialog_is_bypassed(
    tmp_path: Path,
):
    async with (
        running_world(tmp_path, sip_digest_algorithms="MD5") as world,
        AsyncExitStack() as stack,
    ):
        caller, _ = await sip_phone(stack, world, "caller", CALLER_TONE)
        trunk = await world.registered_trunk("callee")
        account = Account(trunk["username"], trunk["password"], world.remote, answermode="manual")
        started = Baresip.start(world.tmp / "callee", account, record=True, tone=CALLEE_TONE)
        callee = await stack.enter_async_context(started)
        await callee.wait_registered()
        gw = world.gateway

        dialled = await caller.command("dial", f"sip:{DID}@{world.remote}")
        assert dialled["ok"], dialled
        parent = await world.received()
        endpoint = {"type": "SIP", "username": account.user, "sipTrunkId": trunk["id"]}
        body = {
            "parentCallId": parent,
            "childCallRequest": {"endpoint": endpoint},
            "propagationOptions": RINGBACK,
        }
        created = await world.api.post("/calls/1/dialogs", json=body)
        assert created.status_code == 201, created.text
        child = created.json()["childCall"]["id"]
        await world.recorder.wait_for(types=["CALL_RINGING"], call_id=child)
        await world.recorder.wait_for(types=["CALL_PRE_ESTABLISHED"], call_id=parent)
        # The caller alone is mixed (its ringback), the callee is in no bridge yet.
        await poll(lambda: gw.bridges.path(parent) is MediaPath.MIX, 5)
        assert gw.bridges.path(parent, child) is None
        ringback = gw.dialogs._by_leg[parent].tone
        assert ringback is not None
        await poll(lambda: ringback.frames >= 60, 5)  # a whole burst, and some silence

        accepted = await callee.command("accept")
        assert accepted["ok"], accepted
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=parent)
        await path_becomes(gw, parent, child, MediaPath.BYPASS)
        assert ringback.stopped and gw.bridges.path(parent) is None
        assert not gw.bridges._sources
        await hang_up(Phones(world, caller, callee, trunk["id"]), parent, child)

    recordings = sorted((caller.directory / "recordings").glob("*-dec.wav"))
    assert recordings, caller.log()
    pcm, rate = read_wav(recordings[-1])
    pcm = pcm.astype(np.float64)
    start = onset(pcm)
    burst = span(pcm, start + 0.1, start + 0.9)
    assert abs(dominant_frequency(burst, rate) - EU_HZ) < 3  # our ringback, over RTP
    assert tone_level(burst, rate, CALLEE_TONE) < -40  # not the callee (it was not bridged)
