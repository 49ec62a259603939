"""The API's views of a leg: ``Call`` (live) and ``CallLog`` (history), and event envelopes.

Derived on demand from the :class:`~gateway.core.leg.Leg`, never stored beside it. Absent
values are left out rather than sent as ``null``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.core.leg import Leg
from gateway.timeutil import format_time


def _compact(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds())


def ring_duration(leg: Leg) -> int | None:
    """Seconds from the start until the call was answered or ended."""
    return _seconds(leg.start_time, leg.answer_time or leg.end_time)


def media_view(leg: Leg) -> dict[str, Any]:
    return {
        "audio": {"muted": leg.muted, "userMuted": False, "deaf": leg.deaf},
        "video": {"camera": False, "screenShare": False, "blind": False},
    }


def call_view(leg: Leg) -> dict[str, Any]:
    return _compact(
        {
            "id": leg.id,
            "endpoint": leg.endpoint,
            "from": leg.from_,
            "to": leg.to,
            "direction": leg.direction.value,
            "state": leg.state.value,
            "media": media_view(leg),
            "startTime": format_time(leg.start_time),
            "answerTime": format_time(leg.answer_time),
            "endTime": format_time(leg.end_time),
            "parentCallId": leg.parent_call_id,
            "ringDuration": ring_duration(leg) if leg.state is not leg.state.CALLING else None,
            "callsConfigurationId": leg.calls_configuration_id,
            "platform": leg.platform,
            "conferenceId": leg.conference_id,
            "customData": leg.custom_data,
            "dialogId": leg.dialog_id,
            "externalId": leg.external_id,
        }
    )


def call_log_view(leg: Leg) -> dict[str, Any]:
    return _compact(
        {
            "callId": leg.id,
            "endpoint": leg.endpoint,
            "from": leg.from_,
            "to": leg.to,
            "direction": leg.direction.value,
            "state": leg.state.value,
            "startTime": format_time(leg.start_time),
            "answerTime": format_time(leg.answer_time),
            "endTime": format_time(leg.end_time),
            "parentCallId": leg.parent_call_id,
            "ringDuration": ring_duration(leg),
            "callsConfigurationIds": [leg.calls_configuration_id],
            "platform": leg.platform,
            "conferenceIds": list(leg.conference_ids),
            "duration": _seconds(leg.answer_time, leg.end_time) or 0,
            "hasCameraVideo": False,
            "hasScreenshareVideo": False,
            "errorCode": leg.error_code.as_json() if leg.error_code else None,
            "customData": leg.custom_data,
            "dialogId": leg.dialog_id,
            "hangupSource": leg.hangup_source.value if leg.hangup_source else None,
            "externalId": leg.external_id,
        }
    )


def call_event(event_type: str, leg: Leg, moment: datetime) -> dict[str, Any]:
    """The envelope of a CALL_* event: final events carry the ``callLog``, others the ``call``."""
    properties = (
        {"callLog": call_log_view(leg)}
        if event_type in ("CALL_FINISHED", "CALL_FAILED")
        else {"call": call_view(leg)}
    )
    return _compact(
        {
            "callId": leg.id,
            "conferenceId": leg.conference_id,
            "dialogId": leg.dialog_id,
            "timestamp": format_time(moment),
            "callsConfigurationId": leg.calls_configuration_id,
            "platform": leg.platform,
            "bulkId": leg.bulk_id,
            "type": event_type,
            "properties": properties,
        }
    )
