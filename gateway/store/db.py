"""The embedded store: one SQLAlchemy engine and the metadata every table module adds to.

SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives a process crash, and
a write costs well under a millisecond, so control-plane writes run inline on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    MetaData,
    Table,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import Insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

metadata = MetaData()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def create_all(self) -> None:
        # Table modules register on import; importing them here keeps the schema complete.
        import gateway.store.tables  # noqa: F401

        metadata.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """A data directory made by an older version lacks the columns added since: add them
        (new columns are nullable) and their indexes, so that upgrading keeps the history.
        ``create_all`` makes only missing tables."""
        existing = inspect(self.engine)
        with self.engine.begin() as connection:
            for table in metadata.sorted_tables:
                have = {column["name"] for column in existing.get_columns(table.name)}
                for column in table.columns:
                    if column.name in have:
                        continue
                    if not column.nullable:
                        raise RuntimeError(
                            f"table {table.name} lacks column {column.name}, which cannot be "
                            "added to existing rows: start with a fresh data directory"
                        )
                    kind = column.type.compile(dialect=self.engine.dialect)
                    connection.execute(
                        text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
                    )
                for index in table.indexes:  # those of the new columns too
                    index.create(connection, checkfirst=True)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    def close(self) -> None:
        self.engine.dispose()


def naive_utc(moment: datetime) -> datetime:
    """SQLite keeps no zone: every time in a table is naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def stored_time(value: str | None) -> datetime | None:
    """A time kept as ISO text in a JSON document."""
    return datetime.fromisoformat(value) if value else None


def upsert_statement(table: Table, key: str = "id") -> Insert:
    """Insert-or-update by ``key``, built once: constructing it costs more than running it."""
    statement = sqlite_insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c[key]],
        set_={c.name: statement.excluded[c.name] for c in table.c if c.name != key},
    )


def equal_to(values: dict[Any, Any]) -> list[Any]:
    """``column == value`` for every filter that was given (not None)."""
    return [column == value for column, value in values.items() if value is not None]


def newest_first(
    conn: Connection, table: Table, conditions: list[Any], offset: int, limit: int
) -> tuple[list[Any], int]:
    """One page of rows matching ``conditions``, newest ``start_time`` first, and the total."""
    total = conn.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one()
    rows = conn.execute(
        select(table)
        .where(*conditions)
        .order_by(table.c.start_time.desc(), table.c.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), total


def row_by_id(conn: Connection, table: Table, ident: str) -> Any:
    """The row whose ``id`` is ``ident``, or None."""
    return conn.execute(select(table).where(table.c.id == ident)).first()


def time_range(
    after_column: Any, after: datetime | None, before_column: Any, before: datetime | None
) -> list[Any]:
    """``after_column > after`` and ``before_column < before``, for the bounds given."""
    conditions = []
    if after is not None:
        conditions.append(after_column > naive_utc(after))
    if before is not None:
        conditions.append(before_column < naive_utc(before))
    return conditions
