"""The leg state machine: the legal paths of the API's states, and nothing else."""

from datetime import UTC, datetime

import pytest

from gateway.core import errors
from gateway.core.leg import (
    Direction,
    HangupSource,
    IllegalTransition,
    Leg,
    LegState,
    can_transition,
)

NOW = datetime(2026, 1, 15, 11, 59, 30, tzinfo=UTC)


def make_leg(state: LegState = LegState.CALLING) -> Leg:
    return Leg(
        "leg-1", Direction.OUTBOUND, {"type": "PHONE", "phoneNumber": "1"}, "cfg", NOW, state
    )


@pytest.mark.parametrize(
    "path",
    [
        [LegState.RINGING, LegState.ESTABLISHED, LegState.FINISHED],
        [
            LegState.PRE_ESTABLISHED,
            LegState.RINGING,
            LegState.PRE_ESTABLISHED,
            LegState.ESTABLISHED,
        ],
        [LegState.BUSY],
        [LegState.RINGING, LegState.NO_ANSWER],
        [LegState.PRE_ESTABLISHED, LegState.CANCELLED],
        [LegState.FAILED],
    ],
)
def test_legal_paths(path):
    leg = make_leg()
    for state in path:
        leg.transition(state, NOW)
    assert leg.state is path[-1]


@pytest.mark.parametrize(
    ("start", "wanted"),
    [
        (LegState.CALLING, LegState.FINISHED),
        (LegState.ESTABLISHED, LegState.RINGING),
        (LegState.ESTABLISHED, LegState.BUSY),
        (LegState.FINISHED, LegState.ESTABLISHED),
        (LegState.BUSY, LegState.FAILED),
        (LegState.RINGING, LegState.CALLING),
    ],
)
def test_illegal_transitions_raise(start, wanted):
    leg = make_leg(start)
    with pytest.raises(IllegalTransition):
        leg.transition(wanted, NOW)
    assert leg.state is start
    assert not can_transition(start, wanted)


def test_end_picks_the_final_state_from_the_cause():
    busy = make_leg(LegState.RINGING)
    busy.end(errors.BUSY, HangupSource.ENDPOINT, NOW)
    assert (busy.state, busy.end_time, busy.hangup_source) == (
        LegState.BUSY,
        NOW,
        HangupSource.ENDPOINT,
    )

    rejected = make_leg(LegState.RINGING)
    rejected.end(errors.REJECTED, HangupSource.ENDPOINT, NOW)
    assert rejected.state is LegState.FAILED

    talking = make_leg(LegState.ESTABLISHED)
    talking.end(errors.NORMAL_HANGUP, HangupSource.API, NOW)
    assert talking.state is LegState.FINISHED


def test_sip_status_mapping_is_one_table():
    assert errors.from_sip_status(486).name == "BUSY"
    assert errors.from_sip_status(408).name == "NO_ANSWER"
    assert errors.from_sip_status(480).name == "NO_ANSWER"
    assert errors.from_sip_status(487).name == "CANCELLED"
    assert errors.from_sip_status(603).name == "REJECTED"
    assert errors.from_sip_status(404).name == "DESTINATION_NOT_FOUND"
    assert errors.from_sip_status(599).name == "SERVICE_UNAVAILABLE"
    ids = [code.id for code in errors.all_codes()]
    assert len(ids) == len(set(ids)) and errors.NORMAL_HANGUP.id == 10000
