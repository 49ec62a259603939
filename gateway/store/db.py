"""The embedded store: one SQLAlchemy engine and the metadata every table module adds to.

SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives a process crash, and
a write costs well under a millisecond, so control-plane writes run inline on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, MetaData, create_engine, event
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

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    def close(self) -> None:
        self.engine.dispose()
