"""Call control with the simulated PSTN, below the HTTP layer: events, states, timers, errors."""

import asyncio

import pytest

from gateway.core.calls import CallControl, CallRequest, InvalidRequest, NotRouted, WrongState
from gateway.core.leg import LegState
from gateway.store import Database
from gateway.store.configurations import CallsConfiguration, ConfigurationStore, Did, DidStore
from gateway.store.legs import SqlLegStore
from trunks.pstn import SimulatedNumber, SimulatedPstn


class EventList:
    """An EventSink that keeps events and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self._changed = asyncio.Event()

    def publish(self, event: dict, order_key: str | None = None) -> None:
        self.events.append(event)
        self._changed.set()

    def types(self, call_id: str) -> list[str]:
        return [e["type"] for e in self.events if e["callId"] == call_id]

    async def wait_for(self, call_id: str, event_type: str, timeout: float = 5) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if event["callId"] == call_id and event["type"] == event_type:
                        return event
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def world(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'gw.sqlite3'}")
    db.create_all()
    configs, dids = ConfigurationStore(db), DidStore(db)
    configs.create(CallsConfiguration("cfg", "test"))
    dids.link(Did("441134960100", "cfg"))
    sink = EventList()
    control = CallControl(SqlLegStore(db), sink, configs, dids)
    numbers = [
        SimulatedNumber.build("15550000001", "answer", {"answerAfterMs": 20}),
        SimulatedNumber.build("15550000002", "busy", {"delayMs": 10}),
        SimulatedNumber.build("15550000003", "no-answer"),
        SimulatedNumber.build("15550000004", "early-media", {"earlyMediaMs": 20}),
        SimulatedNumber.build(
            "15550000005", "hangup-after", {"answerAfterMs": 10, "hangupAfterMs": 30}
        ),
    ]
    pstn = SimulatedPstn(control, numbers)
    yield control, pstn, sink
    await pstn.close()
    await control.close()
    db.close()


def call_to(number: str, **kwargs) -> CallRequest:
    return CallRequest(
        {"type": "PHONE", "phoneNumber": number}, "cfg", from_="15551230000", **kwargs
    )


async def test_outbound_answered_then_hung_up_by_api(world):
    control, _, sink = world
    leg = await control.create_call(call_to("15550000001"))
    assert leg.state is LegState.CALLING
    await sink.wait_for(leg.id, "CALL_ESTABLISHED")
    await control.hangup(leg.id, None)
    assert sink.types(leg.id) == [
        "CALL_STARTED",
        "CALL_RINGING",
        "CALL_ESTABLISHED",
        "CALL_FINISHED",
    ]
    log = sink.events[-1]["properties"]["callLog"]
    assert (log["state"], log["errorCode"]["name"], log["hangupSource"]) == (
        "FINISHED",
        "NORMAL_HANGUP",
        "API",
    )
    with pytest.raises(WrongState):
        await control.hangup(leg.id, None)


async def test_busy_no_answer_early_media_and_callee_hangup(world):
    control, _, sink = world
    busy = await control.create_call(call_to("15550000002"))
    silent = await control.create_call(call_to("15550000003", connect_timeout=1))
    early = await control.create_call(call_to("15550000004"))
    short = await control.create_call(call_to("15550000005"))
    failed = (await sink.wait_for(busy.id, "CALL_FAILED"))["properties"]["callLog"]
    assert (failed["state"], failed["errorCode"]["name"]) == ("BUSY", "BUSY")
    timed_out = (await sink.wait_for(silent.id, "CALL_FAILED"))["properties"]["callLog"]
    assert (timed_out["state"], timed_out["hangupSource"]) == ("NO_ANSWER", "PLATFORM")
    await sink.wait_for(early.id, "CALL_ESTABLISHED")
    assert sink.types(early.id) == ["CALL_STARTED", "CALL_PRE_ESTABLISHED", "CALL_ESTABLISHED"]
    ended = (await sink.wait_for(short.id, "CALL_FINISHED"))["properties"]["callLog"]
    assert ended["hangupSource"] == "ENDPOINT"


async def test_max_duration_ends_an_established_call(world):
    control, _, sink = world
    leg = await control.create_call(call_to("15550000001", max_duration=1))
    log = (await sink.wait_for(leg.id, "CALL_FINISHED"))["properties"]["callLog"]
    assert (log["hangupSource"], log["duration"]) == ("PLATFORM", 1)


async def test_inbound_received_answered_and_rejected(world):
    control, pstn, sink = world
    answered = pstn.place_call("15557654321", "441134960100").call_id
    received = sink.events[-1]
    assert received["type"] == "CALL_RECEIVED"
    assert received["properties"]["call"]["state"] == "RINGING"
    assert received["properties"]["call"]["endpoint"] == {
        "type": "PHONE",
        "phoneNumber": "15557654321",
    }
    await control.pre_answer(answered, {"stage": "pre"})
    await control.answer(answered, None)
    with pytest.raises(WrongState):
        await control.answer(answered, None)
    pstn.hang_up_phone(answered)
    assert sink.types(answered) == [
        "CALL_RECEIVED",
        "CALL_PRE_ESTABLISHED",
        "CALL_ESTABLISHED",
        "CALL_FINISHED",
    ]

    rejected = pstn.place_call("15557654321", "441134960100").call_id
    with pytest.raises(WrongState):
        await control.hangup(rejected, "NORMAL_HANGUP")
    await control.hangup(rejected, "BUSY")
    log = sink.events[-1]["properties"]["callLog"]
    assert (log["state"], log["errorCode"]["name"]) == ("BUSY", "BUSY")
    assert pstn.get_call(rejected).end_cause == "BUSY"


async def test_refusals(world):
    control, pstn, sink = world
    with pytest.raises(NotRouted):
        pstn.place_call("15557654321", "15550000001")
    with pytest.raises(InvalidRequest) as bad:
        await control.create_call(CallRequest({"type": "PHONE"}, "nope"))
    assert set(bad.value.field_errors) == {"callsConfigurationId", "endpoint.phoneNumber"}
    with pytest.raises(InvalidRequest) as unserved:
        await control.create_call(CallRequest({"type": "SIP", "username": "a"}, "cfg"))
    assert "endpoint.type" in unserved.value.field_errors
    assert sink.events == []
    unknown = await control.create_call(call_to("15559999999"))
    log = (await sink.wait_for(unknown.id, "CALL_FAILED"))["properties"]["callLog"]
    assert log["errorCode"]["name"] == "DESTINATION_NOT_FOUND"
