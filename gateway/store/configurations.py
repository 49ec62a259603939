"""Calls configurations and the numbers (DIDs) linked to them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, ForeignKey, Integer, String, Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.db import Database, metadata

configurations_table = Table(
    "calls_configurations",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False, unique=True),
    Column("name", String(128)),
)

dids_table = Table(
    "dids",
    metadata,
    Column("number", String(32), primary_key=True),
    Column(
        "calls_configuration_id",
        String(128),
        ForeignKey("calls_configurations.id", ondelete="CASCADE"),
        nullable=False,
    ),
)


@dataclass(frozen=True)
class CallsConfiguration:
    id: str
    name: str | None

    def as_json(self) -> dict[str, str]:
        body = {"id": self.id}
        if self.name is not None:
            body["name"] = self.name
        return body


class DuplicateId(ValueError):
    pass


class ConfigurationStore:
    """Calls configurations, listed in creation order."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, config: CallsConfiguration) -> CallsConfiguration:
        try:
            with self._db.begin() as conn:
                conn.execute(configurations_table.insert().values(id=config.id, name=config.name))
        except IntegrityError as exc:
            raise DuplicateId(config.id) from exc
        return config

    def get(self, config_id: str) -> CallsConfiguration | None:
        with self._db.begin() as conn:
            row = conn.execute(
                select(configurations_table).where(configurations_table.c.id == config_id)
            ).first()
        return CallsConfiguration(row.id, row.name) if row else None

    def exists(self, calls_configuration_id: str) -> bool:
        return self.get(calls_configuration_id) is not None

    def page(self, offset: int, limit: int) -> tuple[list[CallsConfiguration], int]:
        with self._db.begin() as conn:
            total = conn.execute(
                select(func.count()).select_from(configurations_table)
            ).scalar_one()
            rows = conn.execute(
                select(configurations_table)
                .order_by(configurations_table.c.seq)
                .offset(offset)
                .limit(limit)
            ).all()
        return [CallsConfiguration(row.id, row.name) for row in rows], total

    def rename(self, config_id: str, name: str) -> CallsConfiguration | None:
        with self._db.begin() as conn:
            result = conn.execute(
                update(configurations_table)
                .where(configurations_table.c.id == config_id)
                .values(name=name)
            )
        return CallsConfiguration(config_id, name) if result.rowcount else None

    def delete(self, config_id: str) -> CallsConfiguration | None:
        config = self.get(config_id)
        if config is not None:
            with self._db.begin() as conn:
                conn.execute(
                    delete(configurations_table).where(configurations_table.c.id == config_id)
                )
        return config


@dataclass(frozen=True)
class Did:
    number: str
    calls_configuration_id: str

    def as_json(self) -> dict[str, str]:
        return {"number": self.number, "callsConfigurationId": self.calls_configuration_id}


class DidStore:
    """Numbers the user owns: a call to one raises CALL_RECEIVED on its configuration."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def link(self, did: Did) -> Did:
        with self._db.begin() as conn:
            conn.execute(delete(dids_table).where(dids_table.c.number == did.number))
            conn.execute(
                dids_table.insert().values(
                    number=did.number, calls_configuration_id=did.calls_configuration_id
                )
            )
        return did

    def unlink(self, number: str) -> Did | None:
        found = self.get(number)
        if found is not None:
            with self._db.begin() as conn:
                conn.execute(delete(dids_table).where(dids_table.c.number == number))
        return found

    def get(self, number: str) -> Did | None:
        with self._db.begin() as conn:
            row = conn.execute(select(dids_table).where(dids_table.c.number == number)).first()
        return Did(row.number, row.calls_configuration_id) if row else None

    def all(self) -> list[Did]:
        with self._db.begin() as conn:
            rows = conn.execute(select(dids_table).order_by(dids_table.c.number)).all()
        return [Did(row.number, row.calls_configuration_id) for row in rows]

    def configuration_for(self, number: str) -> str | None:
        did = self.get(number)
        return did.calls_configuration_id if did else None
