"""The webhook outbox: every event for every subscription it goes to, written before delivery.

One row per event per subscription. A row stays ``pending`` until its webhook answers 2xx
(``delivered``) or the dispatcher gives up (``dead``). Rows of one subscription and ordering key
are delivered strictly in ``id`` order: only the lowest pending ``id`` of a group (its head) is
ever sent. The ``id`` never repeats (AUTOINCREMENT), so it is also the id receivers de-duplicate
on. Times are Unix seconds, since they must survive a restart.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)

from gateway.store.db import metadata

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"

outbox_table = Table(
    "webhook_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subscription_id", String(255), nullable=False),
    Column("profile_id", String(255), nullable=False),
    Column("ordering_key", String(255), nullable=False),
    Column("url", String(512), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False, default=PENDING),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("first_attempt_at", Float),
    Column("last_error", String(255)),
    Index("ix_webhook_outbox_groups", "state", "subscription_id", "ordering_key", "id"),
    sqlite_autoincrement=True,
)


@dataclass(frozen=True)
class NewDelivery:
    subscription_id: str
    profile_id: str
    url: str
    ordering_key: str
    event_type: str
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    subscription_id: str
    profile_id: str
    ordering_key: str
    url: str
    event_type: str
    body: bytes = field(repr=False)
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float
    first_attempt_at: float | None
    last_error: str | None


class Outbox:
    """Outbox rows on one connection (see ``SubscriptionRepository`` for why a connection)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def enqueue(self, deliveries: Sequence[NewDelivery], now: float) -> None:
        self._conn.execute(
            insert(outbox_table),
            [
                {
                    "subscription_id": d.subscription_id,
                    "profile_id": d.profile_id,
                    "url": d.url,
                    "ordering_key": d.ordering_key,
                    "event_type": d.event_type,
                    "body": d.body,
                    "state": PENDING,
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": now,
                }
                for d in deliveries
            ],
        )

    def heads(self, exclude: Collection[int], limit: int) -> list[OutboxRow]:
        """The head of each pending group, soonest due first, leaving out rows in ``exclude``.

        A group whose head is excluded (being sent) offers nothing: its next row must wait.
        """
        t = outbox_table
        head_ids = (
            select(func.min(t.c.id))
            .where(t.c.state == PENDING)
            .group_by(t.c.subscription_id, t.c.ordering_key)
        )
        query = (
            select(t)
            .where(t.c.id.in_(head_ids), t.c.id.not_in(list(exclude)))
            .order_by(t.c.next_attempt_at, t.c.id)
            .limit(limit)
        )
        return [OutboxRow(**row._mapping) for row in self._conn.execute(query)]

    def record_attempt(
        self,
        row_id: int,
        *,
        state: str,
        attempts: int,
        first_attempt_at: float,
        next_attempt_at: float,
        error: str | None,
    ) -> None:
        self._conn.execute(
            update(outbox_table)
            .where(outbox_table.c.id == row_id)
            .values(
                state=state,
                attempts=attempts,
                first_attempt_at=first_attempt_at,
                next_attempt_at=next_attempt_at,
                last_error=error,
            )
        )

    def prune(self, before: float) -> int:
        """Forget delivered and dead rows created before ``before``; pending rows stay."""
        result = self._conn.execute(
            delete(outbox_table).where(
                outbox_table.c.state != PENDING, outbox_table.c.created_at < before
            )
        )
        return result.rowcount

    def rows(self, state: str | None = None) -> list[OutboxRow]:
        """Rows in ``id`` order, for inspection and tests."""
        query = select(outbox_table).order_by(outbox_table.c.id)
        if state is not None:
            query = query.where(outbox_table.c.state == state)
        return [OutboxRow(**row._mapping) for row in self._conn.execute(query)]
