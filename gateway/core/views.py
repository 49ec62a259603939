"""The API's views of a leg: ``Call`` (live) and ``CallLog`` (history), of recordings, and event
envelopes.

Derived on demand from the :class:`~gateway.core.leg.Leg`, never stored beside it. Absent
values are left out rather than sent as ``null``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.core.leg import Leg
from gateway.timeutil import format_time

if TYPE_CHECKING:
    from gateway.core.recordings import RecordingFile


def _compact(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds())


def ring_duration(leg: Leg) -> int | None:
    """Seconds from the start until the call was answered or ended."""
    return _seconds(leg.start_time, leg.answer_time or leg.end_time)


def media_properties(muted: bool, user_muted: bool, deaf: bool) -> dict[str, Any]:
    """``MediaProperties`` of a call or a participant (no video: the gateway carries audio)."""
    return {
        "audio": {"muted": muted, "userMuted": user_muted, "deaf": deaf},
        "video": {"camera": False, "screenShare": False, "blind": False},
    }


def media_view(leg: Leg) -> dict[str, Any]:
    return media_properties(leg.muted, leg.user_muted, leg.deaf)


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
            "machineDetection": leg.machine_detection,
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
            "machineDetection": leg.machine_detection,
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
    if event_type in ("CALL_FINISHED", "CALL_FAILED"):
        properties = {"callLog": call_log_view(leg)}
    elif event_type == "CALL_MEDIA_CHANGED":
        properties = media_view(leg)
    else:
        properties = {"call": call_view(leg)}
    return call_envelope(event_type, leg, moment, properties)


def call_envelope(
    event_type: str, leg: Leg, moment: datetime, properties: dict[str, Any]
) -> dict[str, Any]:
    """An event about one call (CALL_*, CALL_RECORDING_*): the call's ids around ``properties``."""
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


# -- recordings: ``public`` is the API's shape (Public*), else the events' -----------------


def recording_file_view(file: RecordingFile, public: bool) -> dict[str, Any]:
    """``RecordingFile`` (events) or ``PublicRecordingFile`` (API, with the customData)."""
    return _compact(
        {
            "id": file.id,
            "name": file.name,
            "fileFormat": "WAV",
            "size": file.size,
            "creationTime": format_time(file.creation_time),
            "duration": file.duration,
            "startTime": format_time(file.start_time),
            "endTime": format_time(file.end_time),
            "location": "HOSTED",
            "customData": (file.custom_data or None) if public else None,
        }
    )


def _status(files: list[RecordingFile]) -> tuple[str, str | None]:
    """SUCCESSFUL, PARTIALLY_FAILED or FAILED, and why the first failed file failed."""
    failed = [file for file in files if file.failed]
    if not failed:
        return "SUCCESSFUL", None
    return ("FAILED" if len(failed) == len(files) else "PARTIALLY_FAILED"), failed[0].reason


def _span(files: Iterable[RecordingFile]) -> dict[str, Any]:
    files = list(files)
    ends = [file.end_time for file in files if file.end_time is not None]
    return {
        "startTime": format_time(min(file.start_time for file in files)),
        "endTime": format_time(max(ends)) if ends else None,
    }


def _ready(files: list[RecordingFile], public: bool) -> list[dict[str, Any]]:
    return [recording_file_view(file, public) for file in files if not file.failed]


def call_recording_view(files: list[RecordingFile], public: bool) -> dict[str, Any]:
    """``CallRecording`` / ``PublicCallRecording``: the files of one call (one recording each
    start and stop), newest last."""
    first = files[0]
    status, reason = _status(files)
    return _compact(
        {
            "callId": first.call_id,
            "endpoint": first.endpoint,
            "direction": first.direction,
            "files": _ready(files, public),
            "status": status,
            "reason": reason,
            "callsConfigurationId": first.calls_configuration_id,
            **({"platform": first.platform} if public else {}),
            **_span(files),
        }
    )


def dialog_recording_view(files: list[RecordingFile], public: bool) -> dict[str, Any]:
    """``DialogRecording`` / ``PublicDialogRecording``: composed files, and one call recording
    per participant for the files that were not composed."""
    first = files[0]
    by_call: dict[str, list[RecordingFile]] = {}
    for file in files:
        if file.call_id is not None:
            by_call.setdefault(file.call_id, []).append(file)
    platform = (
        {"platform": first.platform}
        if public
        else {
            "applicationId": (first.platform or {}).get("applicationId"),
            "entityId": (first.platform or {}).get("entityId"),
        }
    )
    return _compact(
        {
            "dialogId": first.dialog_id,
            "callsConfigurationId": first.calls_configuration_id,
            **platform,
            "composedFiles": _ready([f for f in files if f.call_id is None], public) or None,
            "callRecordings": [call_recording_view(group, public) for group in by_call.values()]
            or None,
            **_span(files),
        }
    )
