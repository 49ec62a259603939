"""The leg: one endpoint connected to the platform (the API calls it a call).

Every state change goes through :meth:`Leg.transition`, which checks it against one table; an
illegal transition raises :class:`IllegalTransition`, because it is a bug, not a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.core.errors import ErrorCode


class LegState(StrEnum):
    CALLING = "CALLING"
    RINGING = "RINGING"
    PRE_ESTABLISHED = "PRE_ESTABLISHED"
    ESTABLISHED = "ESTABLISHED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    NO_ANSWER = "NO_ANSWER"
    BUSY = "BUSY"

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def is_alerting(self) -> bool:
        """Set up but not answered: the states in which the call can still fail."""
        return self in (LegState.CALLING, LegState.RINGING, LegState.PRE_ESTABLISHED)

    @property
    def is_ringing(self) -> bool:
        """The far end rings or plays its early media (what a local ringback replaces)."""
        return self in (LegState.RINGING, LegState.PRE_ESTABLISHED)


class Direction(StrEnum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class HangupSource(StrEnum):
    ENDPOINT = "ENDPOINT"
    API = "API"
    PLATFORM = "PLATFORM"


_FINAL = frozenset(
    {LegState.FINISHED, LegState.FAILED, LegState.CANCELLED, LegState.NO_ANSWER, LegState.BUSY}
)
_UNANSWERED_ENDS = frozenset(_FINAL - {LegState.FINISHED})

# Outbound: CALLING → (PRE_ESTABLISHED | RINGING)* → ESTABLISHED; inbound starts at RINGING.
_TRANSITIONS: dict[LegState, frozenset[LegState]] = {
    LegState.CALLING: frozenset(
        {LegState.RINGING, LegState.PRE_ESTABLISHED, LegState.ESTABLISHED} | _UNANSWERED_ENDS
    ),
    LegState.RINGING: frozenset(
        {LegState.PRE_ESTABLISHED, LegState.ESTABLISHED} | _UNANSWERED_ENDS
    ),
    LegState.PRE_ESTABLISHED: frozenset(
        {LegState.RINGING, LegState.ESTABLISHED} | _UNANSWERED_ENDS
    ),
    LegState.ESTABLISHED: frozenset({LegState.FINISHED}),
}


class IllegalTransition(RuntimeError):
    def __init__(self, leg_id: str, current: LegState, wanted: LegState) -> None:
        super().__init__(f"leg {leg_id}: {current} → {wanted} is not a legal transition")
        self.current = current
        self.wanted = wanted


@dataclass(frozen=True)
class MachineDetectionRequest:
    """``machineDetection`` of a call request: analyse the answer for ``detection_time``
    seconds at most; after MACHINE, look for the message's end for up to ``message_timeout``
    seconds from the answer (0: do not)."""

    detection_time: float = 3.7
    message_timeout: int = 0


def can_transition(current: LegState, wanted: LegState) -> bool:
    return wanted in _TRANSITIONS.get(current, frozenset())


@dataclass
class Leg:
    """The state of one call leg; the API's ``Call`` and ``CallLog`` are views of it."""

    id: str
    direction: Direction
    endpoint: dict[str, Any]
    calls_configuration_id: str
    start_time: datetime
    state: LegState
    from_: str | None = None
    to: str | None = None
    from_display_name: str | None = None
    custom_data: dict[str, str] = field(default_factory=dict)
    external_id: str | None = None
    parent_call_id: str | None = None
    platform: dict[str, str] | None = None
    conference_id: str | None = None
    conference_ids: list[str] = field(default_factory=list)
    dialog_id: str | None = None
    bulk_id: str | None = None
    connect_timeout: int | None = None
    max_duration: int | None = None
    muted: bool = False
    deaf: bool = False
    user_muted: bool = False  # the person muted their own microphone (a browser's button)
    machine_detection_request: MachineDetectionRequest | None = None  # asked, not yet done
    machine_detection: dict[str, Any] | None = None  # the result, as MachineDetectionProperties
    answer_time: datetime | None = None
    end_time: datetime | None = None
    error_code: ErrorCode | None = None
    hangup_source: HangupSource | None = None

    @property
    def endpoint_type(self) -> str:
        return str(self.endpoint.get("type", ""))

    def transition(self, wanted: LegState, now: datetime) -> None:
        if not can_transition(self.state, wanted):
            raise IllegalTransition(self.id, self.state, wanted)
        self.state = wanted
        if wanted is LegState.ESTABLISHED:
            self.answer_time = now
        elif wanted.is_final:
            self.end_time = now

    def end(self, error_code: ErrorCode, source: HangupSource, now: datetime) -> None:
        """Move to the final state the cause leads to (FINISHED only from ESTABLISHED)."""
        wanted = LegState.FINISHED if self.state is LegState.ESTABLISHED else error_code.final_state
        self.transition(wanted, now)
        self.error_code = error_code
        self.hangup_source = source
