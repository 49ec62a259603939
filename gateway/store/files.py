"""Uploaded audio files in the store: one row per file. The bytes are
``<data_dir>/files/<fileId>.<wav|mp3>``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, func, select
from sqlalchemy import delete as sql_delete

from gateway.core.files import AudioFile
from gateway.store.db import Database, metadata, naive_utc, row_by_id, upsert_statement

files_table = Table(
    "audio_files",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("file_format", String(8), nullable=False),
    Column("size", Integer, nullable=False),
    Column("duration", Integer, nullable=False),
    Column("creation_time", DateTime, nullable=False),
    Column("expiration_time", DateTime, nullable=False),
    Index("ix_audio_files_creation_time", "creation_time"),
    Index("ix_audio_files_expiration_time", "expiration_time"),
)

_UPSERT = upsert_statement(files_table)


def _row(file: AudioFile) -> dict[str, Any]:
    return {
        "id": file.id,
        "name": file.name,
        "file_format": file.file_format,
        "size": file.size,
        "duration": file.duration,
        "creation_time": naive_utc(file.creation_time),
        "expiration_time": naive_utc(file.expiration_time),
    }


def _file(row: Any) -> AudioFile:
    return AudioFile(
        id=row.id,
        name=row.name,
        file_format=row.file_format,
        size=row.size,
        duration=row.duration,
        creation_time=row.creation_time.replace(tzinfo=UTC),
        expiration_time=row.expiration_time.replace(tzinfo=UTC),
    )


class SqlFileStore:
    """The :class:`~gateway.core.files.FileStore` on SQLAlchemy."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, file: AudioFile) -> None:
        with self._db.begin() as conn:
            conn.execute(_UPSERT, _row(file))

    def get(self, file_id: str) -> AudioFile | None:
        with self._db.begin() as conn:
            row = row_by_id(conn, files_table, file_id)
        return _file(row) if row else None

    def page(self, now: datetime, offset: int, limit: int) -> tuple[list[AudioFile], int]:
        t = files_table.c
        live = t.expiration_time > naive_utc(now)
        with self._db.begin() as conn:
            count = select(func.count()).select_from(files_table).where(live)
            total = conn.execute(count).scalar_one()
            rows = conn.execute(
                select(files_table)
                .where(live)
                .order_by(t.creation_time.desc(), t.id)
                .offset(offset)
                .limit(limit)
            ).all()
        return [_file(row) for row in rows], total

    def delete(self, file_id: str) -> None:
        with self._db.begin() as conn:
            conn.execute(sql_delete(files_table).where(files_table.c.id == file_id))

    def expired(self, now: datetime) -> list[AudioFile]:
        with self._db.begin() as conn:
            rows = conn.execute(
                select(files_table).where(files_table.c.expiration_time <= naive_utc(now))
            ).all()
        return [_file(row) for row in rows]

    def next_expiry(self) -> datetime | None:
        with self._db.begin() as conn:
            moment = conn.execute(select(func.min(files_table.c.expiration_time))).scalar_one()
        return moment.replace(tzinfo=UTC) if moment is not None else None
