"""Persistence: SQLAlchemy Core over SQLite by default."""

from gateway.store.db import Database, metadata

__all__ = ["Database", "metadata"]
