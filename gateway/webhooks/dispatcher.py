"""Durable, ordered, retried webhook delivery of Calls API events.

``publish`` routes an event through the subscriptions and writes one outbox row per matching
subscription before it returns, so a restart loses nothing. Delivery is one scheduler task
feeding a fixed pool of sender tasks (``concurrency``) over one shared ``httpx.AsyncClient``.
The scheduler only hands out the head of each (subscription, ordering key) group and never two
rows of one group at a time: events of one call reach a webhook in order, one after another,
while other calls proceed beside them. Delivery is at least once (a stop during a request
repeats it after the restart); ``X-Gateway-Event-Id`` lets receivers drop repeats.

Outcomes: 2xx delivered; 408, 429, 5xx, timeouts and connection errors retried with backoff
doubling from ``webhook_retry_initial`` up to ``webhook_retry_max``, until
``webhook_retry_window`` seconds after the first attempt; any other answer is final (dead).
A dead row is logged and its group moves on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.settings import Settings
from gateway.store import subscriptions
from gateway.store.db import Database
from gateway.store.outbox import DEAD, DELIVERED, PENDING, NewDelivery, Outbox, OutboxRow
from gateway.store.subscriptions import Criterion, Profile, Route, SubscriptionRepository
from gateway.webhooks.signing import request_headers

log = logging.getLogger(__name__)

_RETRY = "retry"
PRUNE_EVERY = 3600.0


@dataclass(frozen=True)
class Attempt:
    """The outcome of one delivery attempt, as given to the ``on_attempt`` hook."""

    event_id: int
    subscription_id: str
    event_type: str
    attempts: int
    state: str  # delivered, pending (a retry is scheduled) or dead
    error: str | None = None
    retry_in: float | None = None


def ordering_key(event: dict[str, Any]) -> str:
    """Events with the same key reach a subscription in publish order."""
    return event.get("callId") or event.get("dialogId") or event.get("conferenceId") or ""


def event_origin(event: dict[str, Any]) -> Criterion:
    platform = event.get("platform") or {}
    return Criterion(
        platform.get("applicationId"), platform.get("entityId"), event.get("callsConfigurationId")
    )


def encode(event: dict[str, Any]) -> bytes:
    """Compact JSON; these exact bytes are stored, signed and sent."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookDispatcher:
    """The gateway's ``EventSink``: ``publish`` from the core, ``start``/``stop`` from the app."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        concurrency: int = 8,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._concurrency = concurrency
        self._on_attempt = on_attempt
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._inflight: set[int] = set()
        self._queue: asyncio.Queue[OutboxRow] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._routes_cache: dict[tuple[str, Criterion], list[Route]] = {}
        self._routes_generation = -1

    def publish(self, event: dict[str, Any], order_key: str | None = None) -> None:
        event_type = event.get("type", "")
        routes = self._routes(event_type, event_origin(event))
        if not routes:
            return
        with self._db.begin() as conn:
            body, key = encode(event), order_key or ordering_key(event)
            Outbox(conn).enqueue(
                [
                    NewDelivery(
                        r.subscription_id, r.profile_id, r.notify_url, key, event_type, body
                    )
                    for r in routes
                ],
                time.time(),
            )
        self._idle.clear()
        self._wake.set()

    def _routes(self, event_type: str, origin: Criterion) -> list[Route]:
        """The subscriptions an event goes to; cached until a subscription changes."""
        if self._routes_generation != subscriptions.generation():
            self._routes_cache.clear()
            self._routes_generation = subscriptions.generation()
        key = (event_type, origin)
        if key not in self._routes_cache:
            with self._db.begin() as conn:
                self._routes_cache[key] = SubscriptionRepository(conn).routes(event_type, origin)
        return self._routes_cache[key]

    async def start(self) -> None:
        """Deliver, beginning with whatever an earlier run left pending."""
        self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=self._concurrency))
        self._tasks = [asyncio.create_task(self._schedule(), name="webhook-scheduler")]
        self._tasks += [
            asyncio.create_task(self._send_forever(), name=f"webhook-sender-{n}")
            for n in range(self._concurrency)
        ]

    async def stop(self) -> None:
        """Stop at once; a request cut short stays pending and is sent again by the next run."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        # Rows queued but not sent stay pending in the store; a new run must not send them twice.
        self._inflight.clear()
        self._queue = asyncio.Queue()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def wait_idle(self) -> None:
        """Return once no row is pending: everything published is delivered or dead."""
        await self._idle.wait()

    async def _schedule(self) -> None:
        next_prune = 0.0
        while True:
            self._wake.clear()
            try:
                if time.time() >= next_prune:
                    self._prune()
                    next_prune = time.time() + PRUNE_EVERY
                delay = self._dispatch()
            except Exception:
                log.exception("webhook scheduling failed; trying again shortly")
                delay = self._settings.webhook_retry_initial
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _prune(self) -> None:
        """Keep finished rows for ``webhook_keep_finished`` seconds, so the outbox stays small."""
        with self._db.begin() as conn:
            removed = Outbox(conn).prune(time.time() - self._settings.webhook_keep_finished)
        if removed:
            log.info("forgot %d delivered or dropped webhook events", removed)

    def _dispatch(self) -> float | None:
        """Queue due group heads for the free senders; seconds until the next head falls due."""
        free = self._concurrency - len(self._inflight)
        with self._db.begin() as conn:
            heads = Outbox(conn).heads(exclude=self._inflight, limit=free + 1)
        if not heads and not self._inflight:
            self._idle.set()
        now = time.time()
        for row in heads:
            if row.next_attempt_at > now:
                return row.next_attempt_at - now
            if free == 0:
                break  # a sender finishing wakes the scheduler
            self._inflight.add(row.id)
            self._queue.put_nowait(row)
            free -= 1
        return None

    async def _send_forever(self) -> None:
        while True:
            row = await self._queue.get()
            try:
                await self._attempt(row)
            except Exception:
                log.exception("webhook event %d: the attempt failed unexpectedly", row.id)
                # The row is still due: hold its group back rather than retry it in a tight loop.
                await asyncio.sleep(self._settings.webhook_retry_initial)
            finally:
                self._inflight.discard(row.id)
                self._wake.set()

    async def _attempt(self, row: OutboxRow) -> None:
        first_attempt_at = row.first_attempt_at or time.time()
        outcome, error = await self._send(row)
        attempts = row.attempts + 1
        now = time.time()
        retry_in = None
        if outcome == _RETRY:
            window_left = first_attempt_at + self._settings.webhook_retry_window - now
            if window_left > 0:
                outcome, retry_in = PENDING, min(self._backoff(attempts), window_left)
            else:
                outcome = DEAD
        with self._db.begin() as conn:
            Outbox(conn).record_attempt(
                row.id,
                state=outcome,
                attempts=attempts,
                first_attempt_at=first_attempt_at,
                next_attempt_at=now + (retry_in or 0.0),
                error=error,
            )
        if outcome == DEAD:
            log.warning(
                "webhook event %d (%s) for subscription %s dropped after %d attempt(s): %s",
                row.id,
                row.event_type,
                row.subscription_id,
                attempts,
                error,
            )
        if self._on_attempt is not None:
            self._on_attempt(
                Attempt(
                    row.id, row.subscription_id, row.event_type, attempts, outcome, error, retry_in
                )
            )

    def _backoff(self, attempts: int) -> float:
        initial, ceiling = self._settings.webhook_retry_initial, self._settings.webhook_retry_max
        return min(initial * 2 ** min(attempts - 1, 62), ceiling)

    async def _send(self, row: OutboxRow) -> tuple[str, str | None]:
        """POST the row; (delivered | retry | dead, why not delivered)."""
        assert self._client is not None
        with self._db.begin() as conn:
            repository = SubscriptionRepository(conn)
            profile = repository.profile(row.profile_id)
            security = repository.security(profile.auth_id) if profile and profile.auth_id else None
        try:
            response = await self._client.post(
                row.url,
                content=row.body,
                headers=request_headers(row.id, row.body, profile, security),
                timeout=self._timeout(profile),
            )
        except httpx.TransportError as exc:
            return _RETRY, type(exc).__name__
        status = response.status_code
        if 200 <= status < 300:
            return DELIVERED, None
        if status in (408, 429) or status >= 500:
            return _RETRY, f"HTTP {status}"
        return DEAD, f"HTTP {status}"

    def _timeout(self, profile: Profile | None) -> httpx.Timeout:
        """The profile's connect and read timeouts (ms), else ``webhook_timeout`` (s)."""
        default = self._settings.webhook_timeout

        def seconds(milliseconds: int | None) -> float:
            return milliseconds / 1000 if milliseconds else default

        if profile is None:
            return httpx.Timeout(default)
        return httpx.Timeout(
            default, connect=seconds(profile.connect_timeout), read=seconds(profile.read_timeout)
        )
