"""Legs in the store: the columns that lists filter on, the rest as one JSON document."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, String, Table, Text

from gateway.core import errors
from gateway.core.leg import Direction, HangupSource, Leg, LegState
from gateway.core.query import LegQuery
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

legs_table = Table(
    "legs",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("calls_configuration_id", String(128), nullable=False),
    Column("application_id", String(255)),
    Column("endpoint_type", String(32), nullable=False),
    Column("from_", String(255)),
    Column("to", String(255)),
    Column("direction", String(16), nullable=False),
    Column("state", String(32), nullable=False),
    Column("start_time", DateTime, nullable=False),
    Column("conference_id", String(128)),
    Column("dialog_id", String(128)),
    Column("bulk_id", String(128)),
    Column("document", Text, nullable=False),
    Index("ix_legs_start_time", "start_time"),
    Index("ix_legs_state", "state"),
)

_FINAL_STATES = [state.value for state in LegState if state.is_final]


def _document(leg: Leg) -> str:
    return json.dumps(
        {
            "endpoint": leg.endpoint,
            "fromDisplayName": leg.from_display_name,
            "customData": leg.custom_data,
            "externalId": leg.external_id,
            "parentCallId": leg.parent_call_id,
            "platform": leg.platform,
            "conferenceIds": leg.conference_ids,
            "connectTimeout": leg.connect_timeout,
            "maxDuration": leg.max_duration,
            "muted": leg.muted,
            "deaf": leg.deaf,
            "userMuted": leg.user_muted,
            "machineDetection": leg.machine_detection,
            "startTime": leg.start_time.isoformat(),
            "answerTime": leg.answer_time.isoformat() if leg.answer_time else None,
            "endTime": leg.end_time.isoformat() if leg.end_time else None,
            "errorCode": leg.error_code.name if leg.error_code else None,
            "hangupSource": leg.hangup_source.value if leg.hangup_source else None,
        }
    )


def _row(leg: Leg) -> dict[str, Any]:
    return {
        "id": leg.id,
        "calls_configuration_id": leg.calls_configuration_id,
        "application_id": (leg.platform or {}).get("applicationId"),
        "endpoint_type": leg.endpoint_type,
        "from_": leg.from_,
        "to": leg.to,
        "direction": leg.direction.value,
        "state": leg.state.value,
        "start_time": naive_utc(leg.start_time),
        "conference_id": leg.conference_id,
        "dialog_id": leg.dialog_id,
        "bulk_id": leg.bulk_id,
        "document": _document(leg),
    }


def _leg(row: Any) -> Leg:
    doc = json.loads(row.document)
    return Leg(
        id=row.id,
        direction=Direction(row.direction),
        endpoint=doc["endpoint"],
        calls_configuration_id=row.calls_configuration_id,
        start_time=datetime.fromisoformat(doc["startTime"]).astimezone(UTC),
        state=LegState(row.state),
        from_=row.from_,
        to=row.to,
        from_display_name=doc.get("fromDisplayName"),
        custom_data=doc.get("customData") or {},
        external_id=doc.get("externalId"),
        parent_call_id=doc.get("parentCallId"),
        platform=doc.get("platform"),
        conference_id=row.conference_id,
        conference_ids=doc.get("conferenceIds") or [],
        dialog_id=row.dialog_id,
        bulk_id=row.bulk_id,
        connect_timeout=doc.get("connectTimeout"),
        max_duration=doc.get("maxDuration"),
        muted=doc.get("muted", False),
        deaf=doc.get("deaf", False),
        user_muted=doc.get("userMuted", False),
        machine_detection=doc.get("machineDetection"),
        answer_time=stored_time(doc.get("answerTime")),
        end_time=stored_time(doc.get("endTime")),
        error_code=errors.BY_NAME[doc["errorCode"]] if doc.get("errorCode") else None,
        hangup_source=HangupSource(doc["hangupSource"]) if doc.get("hangupSource") else None,
    )


_UPSERT = upsert_statement(legs_table)


class SqlLegStore:
    """The :class:`~gateway.core.ports.LegStore` on SQLAlchemy."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, leg: Leg) -> None:
        with self._db.begin() as conn:
            conn.execute(_UPSERT, _row(leg))

    def get(self, leg_id: str) -> Leg | None:
        with self._db.begin() as conn:
            row = row_by_id(conn, legs_table, leg_id)
        return _leg(row) if row else None

    def query(self, query: LegQuery, offset: int, limit: int) -> tuple[list[Leg], int]:
        t = legs_table.c
        conditions = []
        equal = {
            t.endpoint_type: query.endpoint_type,
            t.calls_configuration_id: query.calls_configuration_id,
            t.application_id: query.application_id,
            t.from_: query.from_,
            t.to: query.to,
            t.direction: query.direction.value if query.direction else None,
            t.state: query.state.value if query.state else None,
            t.conference_id: query.conference_id,
            t.dialog_id: query.dialog_id,
            t.bulk_id: query.bulk_id,
        }
        conditions = equal_to(equal)
        conditions += time_range(
            t.start_time, query.start_time_after, t.start_time, query.start_time_before
        )
        if query.ended is True:
            conditions.append(t.state.in_(_FINAL_STATES))
        elif query.ended is False:
            conditions.append(t.state.not_in(_FINAL_STATES))
        with self._db.begin() as conn:
            rows, total = newest_first(conn, legs_table, conditions, offset, limit)
        return [_leg(row) for row in rows], total

    def unfinished(self) -> list[Leg]:
        legs, _ = self.query(LegQuery(ended=False), 0, 1_000_000)
        return legs
