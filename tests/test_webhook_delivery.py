"""Webhook delivery over loopback: routing, order per call, retries, signatures, restarts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import Settings
from gateway.store.db import Database, metadata
from gateway.store.outbox import DEAD, DELIVERED, PENDING, Outbox, outbox_table
from gateway.store.subscriptions import (
    BASIC,
    HMAC,
    Criterion,
    Profile,
    Security,
    Subscription,
    SubscriptionRepository,
    profiles_table,
    security_table,
    subscriptions_table,
)
from gateway.testing.webhook_recorder import WebhookRecorder
from gateway.webhooks.dispatcher import Attempt, WebhookDispatcher
from gateway.webhooks.signing import HMAC_ALGORITHMS, verify_signature

SETTINGS = Settings(
    webhook_retry_initial=0.05,
    webhook_retry_max=0.5,
    webhook_retry_window=30.0,
    webhook_timeout=2.0,
)
CALL_EVENTS = ("CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_FINISHED")


def call_event(call_id: str, seq: int, config: str = "conf-1", **extra: Any) -> dict[str, Any]:
    """An event of ``call_id``; ``properties.seq`` tells publish order apart."""
    return {
        "callId": call_id,
        "timestamp": "2026-01-15T11:59:30.000+0000",
        "callsConfigurationId": config,
        "type": CALL_EVENTS[seq % len(CALL_EVENTS)],
        "properties": {"seq": seq},
    } | extra


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["properties"]["seq"] for event in events]


class AttemptLog:
    """Collects the dispatcher's attempts; ``wait_until`` wakes on each one, never polls."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self._changed = asyncio.Event()

    def __call__(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        self._changed.set()

    async def wait_until(self, done: Callable[[list[Attempt]], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not done(self.attempts):
                self._changed.clear()
                await self._changed.wait()

    def failures(self) -> list[Attempt]:
        return [a for a in self.attempts if a.state != DELIVERED]


def open_database(path: Path) -> Database:
    database = Database(f"sqlite:///{path}")
    tables = [security_table, profiles_table, subscriptions_table, outbox_table]
    metadata.create_all(database.engine, tables=tables)
    return database


def subscribe(
    db: Database,
    url: str,
    subscription_id: str = "sub-1",
    events: tuple[str, ...] = CALL_EVENTS,
    criteria: tuple[Criterion, ...] = (),
    security: Security | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    with db.begin() as conn:
        repository = SubscriptionRepository(conn)
        if security is not None:
            repository.save_security(security)
        profile_id = f"{subscription_id}-profile"
        repository.save_profile(
            Profile(profile_id, url, headers=headers or {}, auth_id=security and security.auth_id)
        )
        repository.save_subscription(Subscription(subscription_id, profile_id, events, criteria))


def outbox_rows(db: Database, state: str | None = None) -> list[Any]:
    with db.begin() as conn:
        return Outbox(conn).rows(state)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.sqlite3"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = open_database(db_path)
    yield database
    database.close()


@pytest.fixture
async def recorder() -> AsyncIterator[WebhookRecorder]:
    async with WebhookRecorder() as webhook:
        yield webhook


@pytest.fixture
def log() -> AttemptLog:
    return AttemptLog()


@pytest.fixture
async def dispatcher(db: Database, log: AttemptLog) -> AsyncIterator[WebhookDispatcher]:
    webhooks = WebhookDispatcher(db, SETTINGS, on_attempt=log)
    await webhooks.start()
    yield webhooks
    await webhooks.stop()


def test_publish_routes_by_events_and_criteria(db: Database) -> None:
    """Routing alone: rows written at publish, one compact body shared by every match."""
    subscribe(
        db, "http://127.0.0.1:9/a", "conf-1-calls", criteria=(Criterion(None, None, "conf-1"),)
    )
    subscribe(db, "http://127.0.0.1:9/b", "app-x-finished", ("CALL_FINISHED",), (Criterion("x"),))
    subscribe(db, "http://127.0.0.1:9/c", "everything-failed", ("CALL_FAILED",))
    webhooks = WebhookDispatcher(db, SETTINGS)

    webhooks.publish(call_event("c1", 0))  # CALL_STARTED on conf-1
    webhooks.publish(call_event("c2", 3, platform={"applicationId": "x"}))  # CALL_FINISHED
    webhooks.publish(call_event("c3", 0, config="conf-2"))  # nobody
    webhooks.publish({"type": "CALL_FAILED", "conferenceId": "k", "timestamp": "t"})

    rows = outbox_rows(db)
    assert [(r.subscription_id, r.ordering_key, r.event_type) for r in rows] == [
        ("conf-1-calls", "c1", "CALL_STARTED"),
        ("conf-1-calls", "c2", "CALL_FINISHED"),
        ("app-x-finished", "c2", "CALL_FINISHED"),
        ("everything-failed", "k", "CALL_FAILED"),
    ]
    assert rows[1].body is not None and rows[1].body == rows[2].body
    assert (
        rows[1].body
        == json.dumps(
            call_event("c2", 3, platform={"applicationId": "x"}), separators=(",", ":")
        ).encode()
    )
    assert {r.url for r in rows} == {
        "http://127.0.0.1:9/a",
        "http://127.0.0.1:9/b",
        "http://127.0.0.1:9/c",
    }
    assert all(r.state == PENDING and r.attempts == 0 for r in rows)


async def test_each_call_keeps_its_order(
    db: Database, recorder: WebhookRecorder, dispatcher: WebhookDispatcher
) -> None:
    subscribe(db, recorder.url)
    for seq in range(12):
        dispatcher.publish(call_event("A", seq))
        dispatcher.publish(call_event("B", seq))

    await recorder.wait_for(count=24)
    assert seqs(recorder.events("A")) == list(range(12))
    assert seqs(recorder.events("B")) == list(range(12))
    ids = [int(r.headers["x-gateway-event-id"]) for r in recorder.requests]
    assert sorted(ids) == [row.id for row in outbox_rows(db)]


async def test_a_failing_call_does_not_hold_up_another(
    db: Database, recorder: WebhookRecorder, dispatcher: WebhookDispatcher
) -> None:
    subscribe(db, recorder.url)
    recorder.fail_with(503, when=lambda event: event["callId"] == "A")
    for seq in range(3):
        dispatcher.publish(call_event("A", seq))
        dispatcher.publish(call_event("B", seq))

    await recorder.wait_for(count=3, call_id="B")
    await recorder.wait_for(count=2, call_id="A", rejected=True)
    assert recorder.events("A") == []
    assert set(seqs(recorder.events("A", rejected=True))) == {0}  # only the head is tried

    recorder.recover()
    await recorder.wait_for(count=3, call_id="A")
    assert seqs(recorder.events("A")) == [0, 1, 2]


async def test_receiver_errors_then_recovers_every_event_once_in_order(
    db: Database, recorder: WebhookRecorder, dispatcher: WebhookDispatcher
) -> None:
    subscribe(db, recorder.url)
    recorder.fail_with(503)
    for seq in range(5):
        dispatcher.publish(call_event("A", seq))

    await recorder.wait_for(count=3, rejected=True)
    recorder.recover()
    await recorder.wait_for(count=5)
    await asyncio.wait_for(dispatcher.wait_idle(), 5)

    assert seqs(recorder.events()) == [0, 1, 2, 3, 4]
    rows = outbox_rows(db)
    assert [r.state for r in rows] == [DELIVERED] * 5
    assert rows[0].attempts >= 4 and [r.attempts for r in rows[1:]] == [1, 1, 1, 1]
    first_try = [r for r in recorder.requests if r.event["properties"]["seq"] == 0]
    assert {r.headers["x-gateway-event-id"] for r in first_try} == {str(rows[0].id)}


async def test_refused_connection_then_reopened_port(
    db: Database, recorder: WebhookRecorder, dispatcher: WebhookDispatcher, log: AttemptLog
) -> None:
    subscribe(db, recorder.url)
    url = recorder.url
    await recorder.stop()
    for seq in range(3):
        dispatcher.publish(call_event("A", seq))

    await log.wait_until(lambda attempts: len(attempts) >= 2)
    assert {a.error for a in log.attempts} == {"ConnectError"}
    assert {a.state for a in log.attempts} == {PENDING}

    await recorder.start()
    assert recorder.url == url
    await recorder.wait_for(count=3)
    assert seqs(recorder.events()) == [0, 1, 2]


async def test_backoff_doubles_up_to_the_ceiling(
    db: Database, recorder: WebhookRecorder, dispatcher: WebhookDispatcher, log: AttemptLog
) -> None:
    subscribe(db, recorder.url)
    recorder.fail_with(503)
    dispatcher.publish(call_event("A", 0))

    await log.wait_until(lambda attempts: len(attempts) >= 6)
    assert [a.attempts for a in log.attempts[:6]] == [1, 2, 3, 4, 5, 6]
    assert [a.retry_in for a in log.attempts[:6]] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5])
    assert {a.error for a in log.attempts} == {"HTTP 503"}


async def test_client_error_is_final_and_unblocks_the_call(
    db: Database,
    recorder: WebhookRecorder,
    dispatcher: WebhookDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    subscribe(db, recorder.url)
    recorder.fail_with(410, times=1)
    with caplog.at_level(logging.WARNING, logger="gateway.webhooks.dispatcher"):
        dispatcher.publish(call_event("A", 0))
        dispatcher.publish(call_event("A", 1))
        await recorder.wait_for(count=1)
        await asyncio.wait_for(dispatcher.wait_idle(), 5)

    assert seqs(recorder.events()) == [1]
    assert seqs(recorder.events(rejected=True)) == [0]
    dead, delivered = outbox_rows(db)
    assert (dead.state, dead.attempts, dead.last_error) == (DEAD, 1, "HTTP 410")
    assert delivered.state == DELIVERED
    assert "HTTP 410" in caplog.text and "sub-1" in caplog.text


async def test_retry_window_ends_in_dead_letter(
    db: Database, recorder: WebhookRecorder, log: AttemptLog
) -> None:
    subscribe(db, recorder.url)
    settings = replace(SETTINGS, webhook_retry_window=0.3)
    webhooks = WebhookDispatcher(db, settings, on_attempt=log)
    await webhooks.start()
    try:
        recorder.fail_with(503, when=lambda event: event["properties"]["seq"] == 0)
        webhooks.publish(call_event("A", 0))
        webhooks.publish(call_event("A", 1))
        await recorder.wait_for(count=1)
        await asyncio.wait_for(webhooks.wait_idle(), 5)
    finally:
        await webhooks.stop()

    head = outbox_rows(db)[0]
    assert head.state == DEAD and head.attempts >= 3
    assert 0.3 <= head.next_attempt_at - head.first_attempt_at < 3  # dead once the window ends
    assert seqs(recorder.events()) == [1]


@pytest.mark.parametrize("algorithm", sorted(HMAC_ALGORITHMS))
async def test_hmac_signature_verifies_with_the_secret(
    db: Database, recorder: WebhookRecorder, dispatcher: WebhookDispatcher, algorithm: str
) -> None:
    security = Security("hmac", HMAC, {"secretKey": "top-secret", "algorithm": algorithm})
    subscribe(db, recorder.url, security=security, headers={"X-Tenant": "t1"})
    dispatcher.publish(call_event("A", 0))
    await recorder.wait_for(count=1)

    request = recorder.requests[0]
    name = HMAC_ALGORITHMS[algorithm]
    expected = hmac.new(b"top-secret", request.body, name).hexdigest()
    assert request.headers["x-gateway-signature"] == f"{name}={expected}"
    assert verify_signature(request.body, "top-secret", request.headers["x-gateway-signature"])
    assert not verify_signature(request.body, "guess", request.headers["x-gateway-signature"])
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-tenant"] == "t1"
    assert request.headers["x-gateway-event-id"] == str(outbox_rows(db)[0].id)
    assert "authorization" not in request.headers


async def test_default_hmac_is_sha256(
    db: Database, recorder: WebhookRecorder, dispatcher: WebhookDispatcher
) -> None:
    subscribe(db, recorder.url, security=Security("hmac", HMAC, {"secretKey": "k"}))
    dispatcher.publish(call_event("A", 0))
    await recorder.wait_for(count=1)
    request = recorder.requests[0]
    digest = hmac.new(b"k", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-gateway-signature"] == f"sha256={digest}"


async def test_basic_security_wins_over_a_profile_authorization(
    db: Database, recorder: WebhookRecorder, dispatcher: WebhookDispatcher
) -> None:
    security = Security("basic", BASIC, {"username": "user1", "password": "pa:ss"})
    headers = {"authorization": "Bearer stale", "X-Tenant": "t1"}
    subscribe(db, recorder.url, security=security, headers=headers)
    dispatcher.publish(call_event("A", 0))
    await recorder.wait_for(count=1)

    received = recorder.requests[0].headers
    assert received["authorization"] == "Basic " + base64.b64encode(b"user1:pa:ss").decode()
    assert received["x-tenant"] == "t1"
    assert "x-gateway-signature" not in received


async def test_a_new_dispatcher_delivers_what_the_old_one_left(
    db_path: Path, db: Database, recorder: WebhookRecorder, log: AttemptLog
) -> None:
    subscribe(db, recorder.url)
    await recorder.stop()
    old = WebhookDispatcher(db, SETTINGS, on_attempt=log)
    await old.start()
    for seq in range(3):
        old.publish(call_event("A", seq))
    await log.wait_until(lambda attempts: len(attempts) >= 1)
    await old.stop()
    before = outbox_rows(db)
    assert [r.state for r in before] == [PENDING] * 3 and before[0].attempts >= 1

    await recorder.start()
    reopened = open_database(db_path)  # as a restarted process would
    new = WebhookDispatcher(reopened, SETTINGS)
    await new.start()
    try:
        await recorder.wait_for(count=3)
        await asyncio.wait_for(new.wait_idle(), 5)
    finally:
        await new.stop()
        reopened.close()

    assert seqs(recorder.events()) == [0, 1, 2]
    ids = [r.headers["x-gateway-event-id"] for r in recorder.requests]
    assert ids == [str(r.id) for r in before]
    after = outbox_rows(db)
    assert [r.state for r in after] == [DELIVERED] * 3
    assert after[0].first_attempt_at == before[0].first_attempt_at  # the window is kept


def test_prune_forgets_finished_rows_but_keeps_pending_ones(db: Database) -> None:
    subscribe(db, "http://127.0.0.1:9/webhook")
    dispatcher = WebhookDispatcher(db, Settings())
    for seq in range(3):
        dispatcher.publish(call_event("A", seq))
    with db.begin() as conn:
        rows = Outbox(conn).rows()
        outbox = Outbox(conn)
        outbox.record_attempt(
            rows[0].id,
            state=DELIVERED,
            attempts=1,
            first_attempt_at=1.0,
            next_attempt_at=1.0,
            error=None,
        )
        outbox.record_attempt(
            rows[1].id,
            state=DEAD,
            attempts=9,
            first_attempt_at=1.0,
            next_attempt_at=1.0,
            error="HTTP 410",
        )
        assert outbox.prune(before=rows[0].created_at) == 0  # nothing finished that early
        assert outbox.prune(before=rows[0].created_at + 1) == 2
        assert [r.id for r in outbox.rows()] == [rows[2].id]
