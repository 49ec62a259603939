"""Recording files in the store: one row per file, the columns lists filter on, the rest as
one JSON document. The audio itself is ``<data_dir>/recordings/<fileId>.wav``, its metadata
``<fileId>.json`` beside it.

A file is a call's (``call_id`` only), a dialog's or a conference's (``dialog_id`` or
``conference_id``; with ``call_id`` too when it holds one participant)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text, distinct, func, select
from sqlalchemy import delete as sql_delete

from gateway.core.calls import adapter_address
from gateway.core.recordings import FileStatus, OwnerKind, RecordingFile, RecordingQuery
from gateway.store.db import (
    Database,
    equal_to,
    metadata,
    naive_utc,
    row_by_id,
    stored_time,
    time_range,
    upsert_statement,
)

recordings_table = Table(
    "recording_files",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("call_id", String(128)),
    Column("dialog_id", String(128)),
    Column("conference_id", String(128)),
    Column("conference_name", String(255)),
    Column("calls_configuration_id", String(128), nullable=False),
    Column("application_id", String(255)),
    Column("entity_id", String(255)),
    Column("endpoint_type", String(32)),
    Column("endpoint_identifier", String(255)),
    Column("direction", String(16)),
    Column("status", String(16), nullable=False),
    Column("start_time", DateTime, nullable=False),
    Column("end_time", DateTime),
    Column("size", Integer, nullable=False),
    Column("duration", Integer, nullable=False),
    Column("document", Text, nullable=False),
    Index("ix_recording_files_call_id", "call_id"),
    Index("ix_recording_files_dialog_id", "dialog_id"),
    Index("ix_recording_files_conference_id", "conference_id"),
    Index("ix_recording_files_start_time", "start_time"),
)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _document(file: RecordingFile) -> str:
    return json.dumps(
        {
            "recordingType": file.recording_type,
            "platform": file.platform,
            "endpoint": file.endpoint,
            "startTime": file.start_time.isoformat(),
            "endTime": _iso(file.end_time),
            "creationTime": _iso(file.creation_time),
            "reason": file.reason,
            "customData": file.custom_data,
            "filePrefix": file.file_prefix,
            "channels": file.channels,
            "channelMap": file.channel_map,
        }
    )


def _row(file: RecordingFile) -> dict[str, Any]:
    platform = file.platform or {}
    return {
        "id": file.id,
        "call_id": file.call_id,
        "dialog_id": file.dialog_id,
        "conference_id": file.conference_id,
        "conference_name": file.conference_name,
        "calls_configuration_id": file.calls_configuration_id,
        "application_id": platform.get("applicationId"),
        "entity_id": platform.get("entityId"),
        "endpoint_type": (file.endpoint or {}).get("type"),
        "endpoint_identifier": adapter_address(file.endpoint) if file.endpoint else None,
        "direction": file.direction,
        "status": file.status.value,
        "start_time": naive_utc(file.start_time),
        "end_time": naive_utc(file.end_time) if file.end_time else None,
        "size": file.size,
        "duration": file.duration,
        "document": _document(file),
    }


def _file(row: Any) -> RecordingFile:
    doc = json.loads(row.document)
    return RecordingFile(
        id=row.id,
        calls_configuration_id=row.calls_configuration_id,
        start_time=datetime.fromisoformat(doc["startTime"]).astimezone(UTC),
        recording_type=doc["recordingType"],
        call_id=row.call_id,
        dialog_id=row.dialog_id,
        conference_id=row.conference_id,
        conference_name=row.conference_name,
        platform=doc.get("platform"),
        endpoint=doc.get("endpoint"),
        direction=row.direction,
        end_time=stored_time(doc.get("endTime")),
        creation_time=stored_time(doc.get("creationTime")),
        size=row.size,
        duration=row.duration,
        status=FileStatus(row.status),
        reason=doc.get("reason"),
        custom_data=doc.get("customData") or {},
        file_prefix=doc.get("filePrefix"),
        channels=doc.get("channels", 1),
        channel_map=doc.get("channelMap"),
    )


_UPSERT = upsert_statement(recordings_table)


class SqlRecordingStore:
    """The :class:`~gateway.core.recordings.RecordingStore` on SQLAlchemy."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, file: RecordingFile) -> None:
        with self._db.begin() as conn:
            conn.execute(_UPSERT, _row(file))

    def get(self, file_id: str) -> RecordingFile | None:
        with self._db.begin() as conn:
            row = row_by_id(conn, recordings_table, file_id)
        return _file(row) if row else None

    def delete(self, file_id: str) -> None:
        with self._db.begin() as conn:
            conn.execute(sql_delete(recordings_table).where(recordings_table.c.id == file_id))

    def find(
        self, query: RecordingQuery, offset: int, limit: int
    ) -> tuple[list[list[RecordingFile]], int]:
        t = recordings_table.c
        owner = {
            OwnerKind.CALL: t.call_id,
            OwnerKind.DIALOG: t.dialog_id,
            OwnerKind.CONFERENCE: t.conference_id,
        }[query.kind]
        conditions = [
            t.status != FileStatus.RECORDING.value,
            t.dialog_id.is_not(None) if query.kind is OwnerKind.DIALOG else t.dialog_id.is_(None),
            t.conference_id.is_not(None)
            if query.kind is OwnerKind.CONFERENCE
            else t.conference_id.is_(None),
        ]
        conditions += equal_to(
            {
                t.call_id: query.call_id,
                t.dialog_id: query.dialog_id,
                t.conference_id: query.conference_id,
                t.conference_name: query.conference_name,
                t.calls_configuration_id: query.calls_configuration_id,
                t.application_id: query.application_id,
                t.entity_id: query.entity_id,
                t.endpoint_type: query.endpoint_type,
                t.endpoint_identifier: query.endpoint_identifier,
                t.direction: query.direction,
            }
        )
        if query.owner_ids is not None:
            conditions.append(owner.in_(query.owner_ids))
        if query.composition is not None:
            conditions.append(t.call_id.is_(None) if query.composition else t.call_id.is_not(None))
        conditions += time_range(
            t.start_time, query.start_time_after, t.end_time, query.end_time_before
        )
        with self._db.begin() as conn:
            total = conn.execute(
                select(func.count(distinct(owner))).where(*conditions)
            ).scalar_one()
            owners = [
                row[0]
                for row in conn.execute(
                    select(owner)
                    .where(*conditions)
                    .group_by(owner)
                    .order_by(func.min(t.start_time).desc(), owner)
                    .offset(offset)
                    .limit(limit)
                )
            ]
            rows = conn.execute(
                select(recordings_table)
                .where(*conditions, owner.in_(owners))
                .order_by(t.start_time, t.id)
            ).all()
        groups: dict[str, list[RecordingFile]] = {key: [] for key in owners}
        for row in rows:
            groups[getattr(row, owner.key)].append(_file(row))
        return list(groups.values()), total

    def unfinished(self) -> list[RecordingFile]:
        with self._db.begin() as conn:
            rows = conn.execute(
                select(recordings_table).where(
                    recordings_table.c.status == FileStatus.RECORDING.value
                )
            ).all()
        return [_file(row) for row in rows]
