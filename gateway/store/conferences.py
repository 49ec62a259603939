"""Conferences in the store: the columns that lists filter on, the rest as one JSON document;
and which calls ever took part, so that lists can filter on ``callId``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, String, Table, Text, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.core import errors
from gateway.core.conferences import (
    Conference,
    ConferenceQuery,
    Participant,
    ParticipantState,
)
from gateway.store.db import (
    Database,
    equal_to,
    metadata,
    naive_utc,
    newest_first,
    row_by_id,
    stored_time,
    time_range,
    upsert_statement,
)

conferences_table = Table(
    "conferences",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("calls_configuration_id", String(128), nullable=False),
    Column("application_id", String(255)),
    Column("start_time", DateTime, nullable=False),
    Column("end_time", DateTime),
    Column("document", Text, nullable=False),
    Index("ix_conferences_start_time", "start_time"),
    Index("ix_conferences_name", "name"),
)

conference_calls_table = Table(
    "conference_calls",
    metadata,
    Column("conference_id", String(128), primary_key=True),
    Column("call_id", String(128), primary_key=True),
    Index("ix_conference_calls_call_id", "call_id"),
)


def _participant_json(p: Participant) -> dict[str, Any]:
    return {
        "callId": p.call_id,
        "endpoint": p.endpoint,
        "state": p.state.value,
        "joinTime": p.join_time.isoformat() if p.join_time else None,
        "leaveTime": p.leave_time.isoformat() if p.leave_time else None,
        "muted": p.muted,
        "deaf": p.deaf,
        "userMuted": p.user_muted,
    }


def _participant(doc: dict[str, Any]) -> Participant:
    return Participant(
        call_id=doc["callId"],
        endpoint=doc["endpoint"],
        state=ParticipantState(doc["state"]),
        join_time=stored_time(doc.get("joinTime")),
        leave_time=stored_time(doc.get("leaveTime")),
        muted=doc["muted"],
        deaf=doc["deaf"],
        user_muted=doc.get("userMuted", False),
    )


def _row(conference: Conference) -> dict[str, Any]:
    document = {
        "platform": conference.platform,
        "maxDuration": conference.max_duration,
        "startTime": conference.start_time.isoformat(),
        "endTime": conference.end_time.isoformat() if conference.end_time else None,
        "errorCode": conference.error_code.name if conference.error_code else None,
        "participants": [_participant_json(p) for p in conference.participants],
    }
    return {
        "id": conference.id,
        "name": conference.name,
        "calls_configuration_id": conference.calls_configuration_id,
        "application_id": (conference.platform or {}).get("applicationId"),
        "start_time": naive_utc(conference.start_time),
        "end_time": naive_utc(conference.end_time) if conference.end_time else None,
        "document": json.dumps(document),
    }


def _conference(row: Any) -> Conference:
    doc = json.loads(row.document)
    return Conference(
        id=row.id,
        name=row.name,
        calls_configuration_id=row.calls_configuration_id,
        start_time=datetime.fromisoformat(doc["startTime"]).astimezone(UTC),
        platform=doc.get("platform"),
        max_duration=doc["maxDuration"],
        participants=[_participant(p) for p in doc["participants"]],
        end_time=stored_time(doc.get("endTime")),
        error_code=errors.BY_NAME[doc["errorCode"]] if doc.get("errorCode") else None,
    )


_UPSERT = upsert_statement(conferences_table)
_ADD_CALL = sqlite_insert(conference_calls_table).on_conflict_do_nothing()


class SqlConferenceStore:
    """The :class:`~gateway.core.conferences.ConferenceStore` on SQLAlchemy."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, conference: Conference) -> None:
        calls = [
            {"conference_id": conference.id, "call_id": p.call_id} for p in conference.participants
        ]
        with self._db.begin() as conn:
            conn.execute(_UPSERT, _row(conference))
            if calls:
                conn.execute(_ADD_CALL, calls)

    def get(self, conference_id: str) -> Conference | None:
        with self._db.begin() as conn:
            row = row_by_id(conn, conferences_table, conference_id)
        return _conference(row) if row else None

    def query(
        self, query: ConferenceQuery, offset: int, limit: int
    ) -> tuple[list[Conference], int]:
        t = conferences_table.c
        conditions = equal_to(
            {
                t.name: query.name,
                t.calls_configuration_id: query.calls_configuration_id,
                t.application_id: query.application_id,
            }
        )
        if query.call_id is not None:
            calls = conference_calls_table.c
            with_call = select(calls.conference_id).where(calls.call_id == query.call_id)
            conditions.append(t.id.in_(with_call))
        conditions += time_range(
            t.start_time, query.start_time_after, t.end_time, query.end_time_before
        )
        if query.ended is True:
            conditions.append(t.end_time.is_not(None))
        elif query.ended is False:
            conditions.append(t.end_time.is_(None))
        with self._db.begin() as conn:
            rows, total = newest_first(conn, conferences_table, conditions, offset, limit)
        return [_conference(row) for row in rows], total

    def unfinished(self) -> list[Conference]:
        conferences, _ = self.query(ConferenceQuery(ended=False), 0, 1_000_000)
        return conferences
