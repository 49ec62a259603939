"""The filters of ``GET /calls/1/calls`` and ``/calls/1/calls/history``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.core.leg import Direction, LegState


@dataclass(frozen=True)
class LegQuery:
    endpoint_type: str | None = None
    calls_configuration_id: str | None = None
    application_id: str | None = None
    from_: str | None = None
    to: str | None = None
    direction: Direction | None = None
    state: LegState | None = None
    start_time_after: datetime | None = None
    start_time_before: datetime | None = None
    conference_id: str | None = None
    dialog_id: str | None = None
    bulk_id: str | None = None
    # None: every leg; True: ended legs only (history); False: live legs only.
    ended: bool | None = None
