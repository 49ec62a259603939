"""Media path selection (MediaBridges): bypass, relay or mix for a pair of legs, re-picked as
the legs and the features that need their audio change. Adapters are stand-ins here that
record the re-INVITEs they were asked for; the SIP tests show the same with real endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from gateway.core.bridging import MediaBridges, MediaPath
from gateway.core.calls import JOINING_CONFERENCE, MEDIA_CHANGED
from gateway.core.leg import LegState
from gateway.core.ports import MediaRedirectFailed
from gateway.media.plane import MediaPlane
from gateway.media.port import NativeMedia

PCMU_A = NativeMedia("127.0.0.1", 40000, "PCMU/8000", 0, 101)
PCMU_B = NativeMedia("127.0.0.1", 40002, "PCMU/8000", 0, 101)


class FakePort:
    """A relayable RTP port: ``payload`` stands for the payload types it agreed on."""

    sample_rate = 8000

    def __init__(self, payload: str, level: int) -> None:
        self.payload = payload
        self.level = level
        self.relaying_with: FakePort | None = None
        self.heard: list[np.ndarray] = []

    def read(self) -> np.ndarray:
        return np.full(160, self.level, np.int16)

    def write(self, samples: np.ndarray) -> None:
        self.heard.append(samples)

    def can_relay_with(self, other: object) -> bool:
        return isinstance(other, FakePort) and other.payload == self.payload

    def relay_with(self, other: FakePort) -> None:
        self.relaying_with, other.relaying_with = other, self

    def stop_relay(self) -> None:
        self.relaying_with = None


@dataclass
class FakeLeg:
    id: str
    state: LegState = LegState.ESTABLISHED
    port: FakePort = field(default_factory=lambda: FakePort("pcmu", 0))
    native: NativeMedia | None = None
    refuse: bool = False
    gate: asyncio.Event | None = None  # holds its re-INVITE in flight until set


class FakeCalls:
    """The part of CallControl that MediaBridges uses; re-INVITEs are recorded, not sent."""

    def __init__(self, *legs: FakeLeg) -> None:
        self.legs = {leg.id: leg for leg in legs}
        self.redirects: list[tuple[str, NativeMedia | None]] = []
        self._observers: list[Callable] = []
        self._before: list[Callable] = []

    def observe(self, observer: Callable) -> None:
        self._observers.append(observer)

    def observe_before(self, observer: Callable) -> None:
        self._before.append(observer)

    def observe_dtmf(self, observer: Callable) -> None:
        pass  # no keys in these tests

    def emit(self, leg_id: str, event: str) -> None:
        for observer in self._observers:
            observer(self.legs[leg_id], event)

    def tell_before(self, leg_id: str, change: str) -> None:
        for observer in self._before:
            observer(self.legs[leg_id], change)

    def live(self, leg_id: str) -> FakeLeg | None:
        leg = self.legs.get(leg_id)
        return leg if leg is not None and not leg.state.is_final else None

    def media_port(self, leg_id: str) -> FakePort | None:
        leg = self.live(leg_id)
        return leg.port if leg else None

    def native_media(self, leg_id: str) -> NativeMedia | None:
        leg = self.live(leg_id)
        return leg.native if leg else None

    async def redirect_media(self, leg_id: str, target: NativeMedia | None) -> NativeMedia:
        await asyncio.sleep(0)  # a re-INVITE takes a round trip
        leg = self.legs[leg_id]
        if leg.gate is not None:
            await leg.gate.wait()
        if leg.refuse:
            raise MediaRedirectFailed("488 Not Acceptable Here")
        self.redirects.append((leg_id, target))
        assert leg.native is not None
        return leg.native


@pytest.fixture
def plane():
    plane = MediaPlane()
    yield plane
    plane.close()


def sip_pair(**b_overrides) -> tuple[FakeLeg, FakeLeg]:
    a = FakeLeg("a", port=FakePort("pcmu", 1000), native=PCMU_A)
    b = FakeLeg("b", port=FakePort("pcmu", 3000), native=PCMU_B)
    for name, value in b_overrides.items():
        setattr(b, name, value)
    return a, b


async def bypassed(
    plane: MediaPlane, *others: FakeLeg
) -> tuple[FakeLeg, FakeLeg, FakeCalls, MediaBridges]:
    """Two SIP legs, joined and settled in bypass (their two re-INVITEs recorded)."""
    a, b = sip_pair()
    calls = FakeCalls(a, b, *others)
    bridges = MediaBridges(calls, plane)
    bridges.join("a", "b")
    await bridges.settled()
    assert bridges.path("a", "b") is MediaPath.BYPASS
    return a, b, calls, bridges


async def test_two_answered_rtp_endpoints_with_one_codec_are_bypassed(plane):
    a, b = sip_pair()
    calls = FakeCalls(a, b)
    bridges = MediaBridges(calls, plane)
    assert bridges.join("a", "b")
    assert bridges.path("a", "b") is MediaPath.RELAY  # carries the audio while they move
    assert a.port.relaying_with is b.port
    await bridges.settled()
    assert bridges.path("a", "b") is MediaPath.BYPASS
    assert calls.redirects == [("a", PCMU_B), ("b", PCMU_A)]
    assert not plane.bridges
    bridges.join("a", "b")  # idempotent: nothing moves again
    await bridges.settled()
    assert len(calls.redirects) == 2


async def test_early_media_stays_relayed_until_both_answer(plane):
    a, b = sip_pair(state=LegState.PRE_ESTABLISHED)
    calls = FakeCalls(a, b)
    bridges = MediaBridges(calls, plane)
    bridges.join("a", "b")
    await bridges.settled()
    assert bridges.path("a", "b") is MediaPath.RELAY
    assert calls.redirects == []
    b.state = LegState.ESTABLISHED
    calls.emit("b", "CALL_ESTABLISHED")
    await bridges.settled()
    assert bridges.path("a", "b") is MediaPath.BYPASS


@pytest.mark.parametrize(
    "b_overrides, path",
    [
        ({"port": FakePort("pcma", 3000), "native": replace(PCMU_B, codec="PCMA/8000")}, "mix"),
        ({"native": replace(PCMU_B, telephone_event=None)}, "relay"),
        ({"native": None}, "relay"),  # no RTP of its own (a simulated phone would be mixed)
        ({"native": replace(PCMU_B, direction="sendonly")}, "relay"),  # on hold
    ],
    ids=["different codecs", "no telephone-event", "no native media", "held"],
)
async def test_pairs_that_cannot_be_bypassed_stay_in_the_path(plane, b_overrides, path):
    a, b = sip_pair(**b_overrides)
    if path == "relay":  # same payload types on the gateway's side
        b.port = FakePort("pcmu", 3000)
    calls = FakeCalls(a, b)
    bridges = MediaBridges(calls, plane)
    bridges.join("a", "b")
    await bridges.settled()
    assert bridges.path("a", "b") == path
    assert calls.redirects == []


async def test_a_tap_pulls_a_bypassed_pair_back_and_releases_it_when_removed(plane):
    a, b, calls, bridges = await bypassed(plane)
    seen: list[tuple[tuple[str, ...], np.ndarray]] = []

    def tap(legs, frames):
        seen.append((tuple(legs), frames.copy()))

    assert bridges.tap("a", tap)
    # Relayed while they come back: a mix now would send them the gateway's stream beside
    # each other's.
    assert bridges.path("a", "b") is MediaPath.RELAY
    assert not plane.bridges
    await bridges.settled()
    assert calls.redirects[2:] == [("a", None), ("b", None)]  # re-anchored by re-INVITE
    assert bridges.path("a", "b") is MediaPath.MIX
    (bridge,) = plane.bridges
    bridge.tick()
    legs, frames = seen[-1]
    assert legs == ("a", "b")
    assert frames[:, 0].tolist() == [1000, 3000]
    assert b.port.heard[-1][0] == 1000 and a.port.heard[-1][0] == 3000  # they still talk

    bridges.untap("a", tap)
    await bridges.settled()
    assert bridges.path("a", "b") is MediaPath.BYPASS
    assert calls.redirects[4:] == [("a", PCMU_B), ("b", PCMU_A)]
    assert not plane.bridges


async def test_a_refused_redirect_keeps_the_pair_in_the_path(plane):
    a, b = sip_pair(refuse=True)
    calls = FakeCalls(a, b)
    bridges = MediaBridges(calls, plane)
    bridges.join("a", "b")
    await bridges.settled()
    # a moved, b refused: a is brought back, and the pair stays relayed for good
    assert calls.redirects == [("a", PCMU_B), ("a", None)]
    assert bridges.path("a", "b") is MediaPath.RELAY
    calls.emit("a", MEDIA_CHANGED)
    await bridges.settled()
    assert len(calls.redirects) == 2


async def test_hold_while_bypassed_anchors_and_unhold_bypasses_again(plane):
    a, _b, calls, bridges = await bypassed(plane)
    a.native = replace(PCMU_A, direction="sendonly")
    calls.emit("a", MEDIA_CHANGED)
    await bridges.settled()
    assert bridges.path("a", "b") is MediaPath.RELAY
    assert calls.redirects[2:] == [("a", None), ("b", None)]
    a.native = PCMU_A
    calls.emit("a", MEDIA_CHANGED)
    await bridges.settled()
    assert bridges.path("a", "b") is MediaPath.BYPASS


async def test_a_new_address_while_bypassed_is_given_to_the_other_endpoint(plane):
    a, _b, calls, bridges = await bypassed(plane)
    a.native = replace(PCMU_A, port=41000)
    calls.emit("a", MEDIA_CHANGED)
    await bridges.settled()
    assert calls.redirects[2:] == [("b", a.native)]
    assert bridges.path("a", "b") is MediaPath.BYPASS


@pytest.mark.parametrize("need", ["tapped", "conference"])
async def test_the_leg_left_by_a_bypassed_dialog_comes_back_when_its_media_is_needed(plane, need):
    _a, b, calls, bridges = await bypassed(plane)
    b.state = LegState.FINISHED
    calls.emit("b", "CALL_FINISHED")
    await bridges.settled()
    assert bridges.path("a", "b") is None
    assert calls.redirects[2:] == []  # no re-INVITE for a call that may be hung up next
    if need == "tapped":
        bridges.tap("a", lambda legs, frames: None)
    else:
        calls.tell_before("a", JOINING_CONFERENCE)
    await bridges.settled()
    assert calls.redirects[2:] == [("a", None)]


async def test_a_leg_left_by_a_bypassed_dialog_is_moved_straight_to_its_next_partner(plane):
    c = FakeLeg("c", port=FakePort("pcmu", 5000), native=replace(PCMU_B, port=40004))
    _a, b, calls, bridges = await bypassed(plane, c)
    b.state = LegState.FINISHED
    calls.emit("b", "CALL_FINISHED")
    bridges.join("a", "c")
    await bridges.settled()
    assert calls.redirects[2:] == [("a", c.native), ("c", PCMU_A)]
    assert bridges.path("a", "c") is MediaPath.BYPASS


async def test_parting_before_the_move_starts_moves_no_one(plane):
    a, b = sip_pair()
    calls = FakeCalls(a, b)
    bridges = MediaBridges(calls, plane)
    bridges.join("a", "b")
    bridges.part("a", "b")  # in the same turn: the dialog ended as it was answered
    await bridges.settled()
    assert calls.redirects == []


async def test_a_leg_moved_after_its_pair_parted_is_brought_back_for_its_tap(plane):
    a, b = sip_pair()
    b.gate = asyncio.Event()
    calls = FakeCalls(a, b)
    bridges = MediaBridges(calls, plane)
    bridges.join("a", "b")
    async with asyncio.timeout(5):
        while calls.redirects != [("a", PCMU_B)]:
            await asyncio.sleep(0)  # a has moved; b's re-INVITE is on its way
    bridges.part("a", "b")
    bridges.tap("b", lambda legs, frames: None)  # b alone, to be recorded
    b.gate.set()  # b's answer arrives: it sends to a now, so it must come back
    await bridges.settled()
    assert calls.redirects == [("a", PCMU_B), ("b", PCMU_A), ("b", None)]


async def test_a_removed_tap_is_fed_no_more_and_one_tap_on_both_legs_once(plane):
    _a, _b, _calls, bridges = await bypassed(plane)
    seen: list[int] = []

    def tap(legs, frames):
        seen.append(len(legs))

    bridges.tap("a", tap)
    bridges.tap("b", tap)
    await bridges.settled()
    (bridge,) = plane.bridges
    bridge.tick()
    assert seen == [2]
    bridges.untap("a", tap)
    bridges.untap("b", tap)
    bridge.tick()
    assert seen == [2]
    await bridges.settled()
    assert bridges.path("a", "b") is MediaPath.BYPASS


async def test_a_tap_in_the_same_turn_as_the_answer_never_bypasses(plane):
    """A dialog created with ``recording`` starts its recorder as the callee answers: the
    pair goes straight to the mix, with no trip through bypass."""
    a, b = sip_pair()
    calls = FakeCalls(a, b)
    bridges = MediaBridges(calls, plane)
    bridges.join("a", "b")
    bridges.tap("a", lambda legs, frames: None)
    await bridges.settled()
    assert calls.redirects == []
    assert bridges.path("a", "b") is MediaPath.MIX


async def test_a_source_played_to_one_leg_pulls_the_pair_back_and_only_that_leg_hears_it(plane):
    a, b, calls, bridges = await bypassed(plane)
    prompt = np.full(160, 500, np.int16)
    assert bridges.play("a", lambda: prompt)
    await bridges.settled()
    assert calls.redirects[2:] == [("a", None), ("b", None)]
    assert bridges.path("a", "b") is MediaPath.MIX
    (bridge,) = plane.bridges
    bridge.tick()
    assert a.port.heard[-1][0] == 3000 + 500  # its partner, with the prompt over it
    assert b.port.heard[-1][0] == 1000  # the partner hears the leg, not the prompt

    source = bridge.overlays[0].source
    bridges.unplay("a", source)
    await bridges.settled()
    assert bridges.path("a", "b") is MediaPath.BYPASS


async def test_a_source_played_to_a_lone_leg_gets_a_bridge_that_goes_with_it(plane):
    calls = FakeCalls(FakeLeg("a", port=FakePort("pcmu", 0)))
    bridges = MediaBridges(calls, plane)
    frames = iter([np.full(160, 700, np.int16), None])

    def source():
        return next(frames)

    assert bridges.play("a", source)
    (bridge,) = plane.bridges
    bridge.tick()
    bridge.tick()
    port = calls.legs["a"].port
    assert [frame[0] for frame in port.heard] == [700, 0]
    bridges.unplay("a", source)
    assert not plane.bridges
