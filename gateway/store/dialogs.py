"""Dialogs in the store: the columns that lists filter on, the rest as one JSON document."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, String, Table, Text

from gateway.core import errors
from gateway.core.dialogs import (
    Dialog,
    DialogHangupSource,
    DialogQuery,
    DialogState,
    Propagation,
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

dialogs_table = Table(
    "dialogs",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("calls_configuration_id", String(128), nullable=False),
    Column("application_id", String(255)),
    Column("state", String(32), nullable=False),
    Column("parent_call_id", String(128), nullable=False),
    Column("child_call_id", String(128), nullable=False),
    Column("start_time", DateTime, nullable=False),
    Column("end_time", DateTime),
    Column("document", Text, nullable=False),
    Index("ix_dialogs_start_time", "start_time"),
    Index("ix_dialogs_state", "state"),
    Index("ix_dialogs_parent_call_id", "parent_call_id"),
)

_FINAL_STATES = [state.value for state in DialogState if state.is_final]


def _document(dialog: Dialog) -> str:
    return json.dumps(
        {
            "platform": dialog.platform,
            "childCallHangup": dialog.propagation.child_call_hangup,
            "childCallRinging": dialog.propagation.child_call_ringing,
            "ringbackGeneration": dialog.propagation.ringback_generation,
            "maxDuration": dialog.max_duration,
            "startTime": dialog.start_time.isoformat(),
            "establishTime": dialog.establish_time.isoformat() if dialog.establish_time else None,
            "endTime": dialog.end_time.isoformat() if dialog.end_time else None,
            "errorCode": dialog.error_code.name if dialog.error_code else None,
            "hangupSource": dialog.hangup_source.value if dialog.hangup_source else None,
        }
    )


def _row(dialog: Dialog) -> dict[str, Any]:
    return {
        "id": dialog.id,
        "calls_configuration_id": dialog.calls_configuration_id,
        "application_id": (dialog.platform or {}).get("applicationId"),
        "state": dialog.state.value,
        "parent_call_id": dialog.parent_call_id,
        "child_call_id": dialog.child_call_id,
        "start_time": naive_utc(dialog.start_time),
        "end_time": naive_utc(dialog.end_time) if dialog.end_time else None,
        "document": _document(dialog),
    }


def _dialog(row: Any) -> Dialog:
    doc = json.loads(row.document)
    return Dialog(
        id=row.id,
        calls_configuration_id=row.calls_configuration_id,
        parent_call_id=row.parent_call_id,
        child_call_id=row.child_call_id,
        start_time=datetime.fromisoformat(doc["startTime"]).astimezone(UTC),
        state=DialogState(row.state),
        platform=doc.get("platform"),
        propagation=Propagation(
            doc["childCallHangup"], doc["childCallRinging"], doc["ringbackGeneration"]
        ),
        max_duration=doc["maxDuration"],
        establish_time=stored_time(doc.get("establishTime")),
        end_time=stored_time(doc.get("endTime")),
        error_code=errors.BY_NAME[doc["errorCode"]] if doc.get("errorCode") else None,
        hangup_source=DialogHangupSource(doc["hangupSource"]) if doc.get("hangupSource") else None,
    )


_UPSERT = upsert_statement(dialogs_table)


class SqlDialogStore:
    """The :class:`~gateway.core.dialogs.DialogStore` on SQLAlchemy."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, dialog: Dialog) -> None:
        with self._db.begin() as conn:
            conn.execute(_UPSERT, _row(dialog))

    def get(self, dialog_id: str) -> Dialog | None:
        with self._db.begin() as conn:
            row = row_by_id(conn, dialogs_table, dialog_id)
        return _dialog(row) if row else None

    def query(self, query: DialogQuery, offset: int, limit: int) -> tuple[list[Dialog], int]:
        t = dialogs_table.c
        equal = {
            t.calls_configuration_id: query.calls_configuration_id,
            t.application_id: query.application_id,
            t.state: query.state.value if query.state else None,
            t.parent_call_id: query.parent_call_id,
            t.child_call_id: query.child_call_id,
        }
        conditions = equal_to(equal)
        conditions += time_range(
            t.start_time, query.start_time_after, t.end_time, query.end_time_before
        )
        if query.ended is True:
            conditions.append(t.state.in_(_FINAL_STATES))
        elif query.ended is False:
            conditions.append(t.state.not_in(_FINAL_STATES))
        with self._db.begin() as conn:
            rows, total = newest_first(conn, dialogs_table, conditions, offset, limit)
        return [_dialog(row) for row in rows], total

    def unfinished(self) -> list[Dialog]:
        dialogs, _ = self.query(DialogQuery(ended=False), 0, 1_000_000)
        return dialogs
