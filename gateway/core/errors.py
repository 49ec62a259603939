"""The one table of hangup causes: name (the stable key clients match on), id, description,
the final leg state it leads to, and the SIP response it maps from and to.

Only ``10000 NORMAL_HANGUP`` is confirmed from public material; the other ids are ours, in the
same 10xxx range, and never change once published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core.leg import LegState


@dataclass(frozen=True)
class ErrorCode:
    id: int
    name: str
    description: str
    final_state: LegState
    sip_status: int
    sip_reason: str
    needs_established: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description}


_TABLE = [
    ErrorCode(
        10000,
        "NORMAL_HANGUP",
        "The call has ended with hangup initiated by caller, callee or API",
        LegState.FINISHED,
        200,
        "OK",
        needs_established=True,
    ),
    ErrorCode(
        10001,
        "MACHINE_DETECTED",
        "The call was ended because a machine answered it",
        LegState.FINISHED,
        200,
        "OK",
        needs_established=True,
    ),
    ErrorCode(
        10002,
        "NO_ANSWER",
        "The callee did not answer in time",
        LegState.NO_ANSWER,
        480,
        "Temporarily Unavailable",
    ),
    ErrorCode(10003, "BUSY", "The callee is busy", LegState.BUSY, 486, "Busy Here"),
    ErrorCode(
        10004,
        "CANCELLED",
        "The call was cancelled before it was answered",
        LegState.CANCELLED,
        487,
        "Request Terminated",
    ),
    ErrorCode(10005, "REJECTED", "The call was rejected", LegState.FAILED, 603, "Decline"),
    ErrorCode(10006, "FORBIDDEN", "The call is not allowed", LegState.FAILED, 403, "Forbidden"),
    ErrorCode(
        10007,
        "DESTINATION_NOT_FOUND",
        "The destination does not exist",
        LegState.FAILED,
        404,
        "Not Found",
    ),
    ErrorCode(
        10008,
        "DESTINATION_UNAVAILABLE",
        "The destination cannot be reached",
        LegState.FAILED,
        502,
        "Bad Gateway",
    ),
    ErrorCode(
        10009,
        "INVALID_DESTINATION",
        "The destination address is not valid",
        LegState.FAILED,
        484,
        "Address Incomplete",
    ),
    ErrorCode(
        10010,
        "INVALID_REQUEST",
        "The call request was not valid",
        LegState.FAILED,
        400,
        "Bad Request",
    ),
    ErrorCode(
        10011,
        "REQUEST_TIMEOUT",
        "The network did not answer the call request in time",
        LegState.FAILED,
        504,
        "Server Time-out",
    ),
    ErrorCode(
        10012,
        "SERVICE_UNAVAILABLE",
        "The service is unavailable",
        LegState.FAILED,
        503,
        "Service Unavailable",
    ),
    # Not in the spec's list of hangup causes: a gateway name for what SIP says with 488.
    ErrorCode(
        10013,
        "NO_COMMON_CODEC",
        "The endpoints have no audio codec in common",
        LegState.FAILED,
        488,
        "Not Acceptable Here",
    ),
]

BY_NAME: dict[str, ErrorCode] = {code.name: code for code in _TABLE}
_BY_SIP: dict[int, ErrorCode] = {code.sip_status: code for code in _TABLE if code.sip_status >= 300}
_BY_SIP.update(
    {
        408: BY_NAME["NO_ANSWER"],
        410: BY_NAME["DESTINATION_UNAVAILABLE"],
        600: BY_NAME["BUSY"],
        604: BY_NAME["DESTINATION_NOT_FOUND"],
        416: BY_NAME["INVALID_DESTINATION"],
        485: BY_NAME["INVALID_DESTINATION"],
    }
)

NORMAL_HANGUP = BY_NAME["NORMAL_HANGUP"]
NO_ANSWER = BY_NAME["NO_ANSWER"]
BUSY = BY_NAME["BUSY"]
CANCELLED = BY_NAME["CANCELLED"]
REJECTED = BY_NAME["REJECTED"]
DESTINATION_NOT_FOUND = BY_NAME["DESTINATION_NOT_FOUND"]
DESTINATION_UNAVAILABLE = BY_NAME["DESTINATION_UNAVAILABLE"]
SERVICE_UNAVAILABLE = BY_NAME["SERVICE_UNAVAILABLE"]
NO_COMMON_CODEC = BY_NAME["NO_COMMON_CODEC"]


def from_sip_status(status: int) -> ErrorCode:
    """A failure response to an outbound INVITE, as the cause a client sees."""
    if status in _BY_SIP:
        return _BY_SIP[status]
    if 500 <= status < 600:
        return SERVICE_UNAVAILABLE
    return BY_NAME["DESTINATION_UNAVAILABLE"] if status >= 600 else BY_NAME["INVALID_REQUEST"]


def all_codes() -> list[ErrorCode]:
    return list(_TABLE)
