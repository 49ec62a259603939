"""Subscriptions (Infobip Subscriptions API): which events go to which notification profile.

A subscription names events and criteria (applicationId / entityId / callsConfigurationId); a
notification profile holds the webhook URL, headers and timeouts; security settings hold the
BASIC or HMAC credentials the profile signs with. The three are separate resources that refer
to each other by id, as in the API.

Profile knobs the gateway stores and echoes but does not act on (``maxBucketSize``,
``windowSize``, ``rateLimit``, ``enabledSSLProtocols``, ``responseRegex``,
``responseBodyRegex``, ``clientCertificateId``) live in ``Profile.options``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)

from gateway.store.db import metadata

VOICE_VIDEO = "VOICE_VIDEO"

# The Subscriptions API's ``SimpleVoiceVideoEvents``: the Calls API events plus four events of
# other voice products, which a subscription may name although the gateway never emits them.
VOICE_VIDEO_EVENTS = frozenset(
    [
        "APPLICATION_TRANSFER_FAILED",
        "APPLICATION_TRANSFER_FINISHED",
        "APPLICATION_TRANSFER_REQUESTED",
        "BULK_CALL_STATUS",
        "CALL_DISCONNECTED",
        "CALL_ESTABLISHED",
        "CALL_FAILED",
        "CALL_FINISHED",
        "CALL_MEDIA_CHANGED",
        "CALL_PRE_ESTABLISHED",
        "CALL_RECEIVED",
        "CALL_RECONNECTED",
        "CALL_RECORDING_DELETED",
        "CALL_RECORDING_FAILED",
        "CALL_RECORDING_READY",
        "CALL_RECORDING_STARTED",
        "CALL_RECORDING_STOPPED",
        "CALL_RINGING",
        "CALL_STARTED",
        "CONFERENCE_COMPOSITION_FAILED",
        "CONFERENCE_COMPOSITION_FINISHED",
        "CONFERENCE_CREATED",
        "CONFERENCE_FINISHED",
        "CONFERENCE_RECORDING_DELETED",
        "CONFERENCE_RECORDING_FAILED",
        "CONFERENCE_RECORDING_READY",
        "CONFERENCE_RECORDING_STARTED",
        "CONFERENCE_RECORDING_STOPPED",
        "DELIVERY",
        "DIALOG_COMPOSITION_FAILED",
        "DIALOG_COMPOSITION_FINISHED",
        "DIALOG_CREATED",
        "DIALOG_ESTABLISHED",
        "DIALOG_FAILED",
        "DIALOG_FINISHED",
        "DIALOG_RECORDING_DELETED",
        "DIALOG_RECORDING_FAILED",
        "DIALOG_RECORDING_READY",
        "DIALOG_RECORDING_STARTED",
        "DIALOG_RECORDING_STOPPED",
        "DIALOG_TRANSFER_FAILED",
        "DIALOG_TRANSFER_FINISHED",
        "DIALOG_TRANSFER_REQUESTED",
        "DTMF_CAPTURED",
        "ERROR",
        "MACHINE_DETECTION_FAILED",
        "MACHINE_DETECTION_FINISHED",
        "MACHINE_MESSAGE_DETECTION_FAILED",
        "MACHINE_MESSAGE_DETECTION_FINISHED",
        "MEDIA_STREAM_FAILED",
        "MEDIA_STREAM_FINISHED",
        "MEDIA_STREAM_STARTED",
        "MISSED_CALL",
        "NUMBER_MASKING",
        "PARTICIPANT_JOINED",
        "PARTICIPANT_JOINING",
        "PARTICIPANT_JOIN_FAILED",
        "PARTICIPANT_MEDIA_CHANGED",
        "PARTICIPANT_RECORDING_FAILED",
        "PARTICIPANT_REMOVED",
        "PARTICIPANT_ROLE_CHANGED",
        "PARTICIPANT_ROLE_CHANGE_FAILED",
        "PARTICIPANT_STARTED_TALKING",
        "PARTICIPANT_STOPPED_TALKING",
        "PLAY_FINISHED",
        "SAY_FINISHED",
        "SILENT_VERIFICATION_DELIVERY",
        "SPEECH_CAPTURED",
        "TRANSCRIPTION",
    ]
)

BASIC = "BASIC"
HMAC = "HMAC"

security_table = Table(
    "subscription_security",
    metadata,
    Column("seq", Integer, primary_key=True),
    Column("auth_id", String(255), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("credentials", JSON, nullable=False),
)

profiles_table = Table(
    "subscription_profiles",
    metadata,
    Column("seq", Integer, primary_key=True),
    Column("profile_id", String(255), nullable=False, unique=True),
    Column("notify_url", String(512), nullable=False),
    Column("content_type", String(255)),
    Column("headers", JSON, nullable=False),
    Column("connect_timeout_ms", Integer),
    Column("read_timeout_ms", Integer),
    Column("auth_id", String(255), ForeignKey(security_table.c.auth_id)),
    Column("options", JSON, nullable=False),
)

subscriptions_table = Table(
    "subscriptions",
    metadata,
    Column("seq", Integer, primary_key=True),
    Column("subscription_id", String(255), nullable=False, unique=True),
    Column("channel", String(32), nullable=False),
    Column("name", String(255)),
    Column("profile_id", String(255), ForeignKey(profiles_table.c.profile_id), nullable=False),
    Column("events", JSON, nullable=False),
    Column("criteria", JSON, nullable=False),
    Column("resources", JSON, nullable=False),
    Column("users", JSON, nullable=False),
)


@dataclass(frozen=True)
class Security:
    """A profile's credentials: BASIC username and password, or HMAC secretKey and algorithm."""

    auth_id: str
    type: str
    # Kept out of repr so that a logged Security never shows a secret.
    credentials: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class Profile:
    """Where and how events are sent; timeouts in milliseconds, as the API gives them."""

    profile_id: str
    notify_url: str
    content_type: str | None = None
    # Headers often carry tokens: out of repr, like credentials.
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    connect_timeout: int | None = None
    read_timeout: int | None = None
    auth_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Criterion:
    """One ``criteria[]`` entry; a field left out matches any value.

    The same triple describes where an event comes from (``Criterion`` of the event's
    ``platform.applicationId``, ``platform.entityId`` and ``callsConfigurationId``).
    """

    application_id: str | None = None
    entity_id: str | None = None
    calls_configuration_id: str | None = None

    def _values(self) -> tuple[str | None, str | None, str | None]:
        return (self.application_id, self.entity_id, self.calls_configuration_id)

    def matches(self, origin: Criterion) -> bool:
        return all(
            want is None or want == got
            for want, got in zip(self._values(), origin._values(), strict=True)
        )

    def intersects(self, other: Criterion) -> bool:
        """Whether some event could match both criteria."""
        return all(
            a is None or b is None or a == b
            for a, b in zip(self._values(), other._values(), strict=True)
        )

    def as_dict(self) -> dict[str, str]:
        keys = ("applicationId", "entityId", "callsConfigurationId")
        return {
            key: value for key, value in zip(keys, self._values(), strict=True) if value is not None
        }


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    profile_id: str
    events: tuple[str, ...]
    criteria: tuple[Criterion, ...] = ()
    name: str | None = None
    resources: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    channel: str = VOICE_VIDEO

    def _scope(self) -> tuple[Criterion, ...]:
        # No criteria: every application, entity and calls configuration.
        return self.criteria or (Criterion(),)

    def routes(self, event_type: str, origin: Criterion) -> bool:
        return event_type in self.events and any(c.matches(origin) for c in self._scope())

    def shared_events(self, other: Subscription) -> set[str]:
        """Events that one occurrence could send to both subscriptions."""
        if not any(a.intersects(b) for a in self._scope() for b in other._scope()):
            return set()
        return set(self.events) & set(other.events)


@dataclass(frozen=True)
class Route:
    """Where ``publish`` sends one event for one subscription."""

    subscription_id: str
    profile_id: str
    notify_url: str


def _security(row: Any) -> Security:
    return Security(row.auth_id, row.type, dict(row.credentials))


def _profile(row: Any) -> Profile:
    return Profile(
        profile_id=row.profile_id,
        notify_url=row.notify_url,
        content_type=row.content_type,
        headers=dict(row.headers),
        connect_timeout=row.connect_timeout_ms,
        read_timeout=row.read_timeout_ms,
        auth_id=row.auth_id,
        options=dict(row.options),
    )


def _subscription(row: Any) -> Subscription:
    return Subscription(
        subscription_id=row.subscription_id,
        profile_id=row.profile_id,
        events=tuple(row.events),
        criteria=tuple(
            Criterion(c.get("applicationId"), c.get("entityId"), c.get("callsConfigurationId"))
            for c in row.criteria
        ),
        name=row.name,
        resources=tuple(row.resources),
        users=tuple(row.users),
        channel=row.channel,
    )


_generation = 0  # bumped by every write, so that readers may cache what they derive


def generation() -> int:
    """Changes whenever a subscription, profile or security setting may have changed."""
    return _generation


def _changed() -> None:
    global _generation
    _generation += 1


class SubscriptionRepository:
    """Subscriptions, profiles and security settings, read and written on one connection.

    Built on the connection of a transaction (``with db.begin() as conn``) so that a request's
    checks (duplicates, overlaps, references) and its writes commit together.
    Lists come newest first, as the API sorts them.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _save(self, table: Table, key: str, values: dict[str, Any]) -> None:
        _changed()
        column = table.c[key]
        result = self._conn.execute(update(table).where(column == values[key]).values(values))
        if result.rowcount == 0:
            self._conn.execute(insert(table).values(values))

    def _delete(self, table: Table, key: str, ident: str) -> bool:
        _changed()
        return self._conn.execute(delete(table).where(table.c[key] == ident)).rowcount > 0

    # Security settings.

    def security(self, auth_id: str) -> Security | None:
        row = self._conn.execute(
            select(security_table).where(security_table.c.auth_id == auth_id)
        ).first()
        return _security(row) if row else None

    def securities(self) -> list[Security]:
        rows = self._conn.execute(select(security_table).order_by(security_table.c.seq.desc()))
        return [_security(row) for row in rows]

    def save_security(self, security: Security) -> None:
        values = {"auth_id": security.auth_id, "type": security.type}
        self._save(security_table, "auth_id", values | {"credentials": security.credentials})

    def delete_security(self, auth_id: str) -> bool:
        return self._delete(security_table, "auth_id", auth_id)

    # Notification profiles.

    def profile(self, profile_id: str) -> Profile | None:
        row = self._conn.execute(
            select(profiles_table).where(profiles_table.c.profile_id == profile_id)
        ).first()
        return _profile(row) if row else None

    def profiles(self, auth_id: str | None = None) -> list[Profile]:
        """Every profile, or those using the security settings ``auth_id``."""
        query = select(profiles_table).order_by(profiles_table.c.seq.desc())
        if auth_id is not None:
            query = query.where(profiles_table.c.auth_id == auth_id)
        return [_profile(row) for row in self._conn.execute(query)]

    def save_profile(self, profile: Profile) -> None:
        self._save(
            profiles_table,
            "profile_id",
            {
                "profile_id": profile.profile_id,
                "notify_url": profile.notify_url,
                "content_type": profile.content_type,
                "headers": profile.headers,
                "connect_timeout_ms": profile.connect_timeout,
                "read_timeout_ms": profile.read_timeout,
                "auth_id": profile.auth_id,
                "options": profile.options,
            },
        )

    def delete_profile(self, profile_id: str) -> bool:
        return self._delete(profiles_table, "profile_id", profile_id)

    # Subscriptions.

    def subscription(self, subscription_id: str) -> Subscription | None:
        row = self._conn.execute(
            select(subscriptions_table).where(
                subscriptions_table.c.subscription_id == subscription_id
            )
        ).first()
        return _subscription(row) if row else None

    def subscriptions(
        self, channel: str = VOICE_VIDEO, profile_id: str | None = None
    ) -> list[Subscription]:
        """Every subscription of a channel, or those sending to ``profile_id``."""
        query = (
            select(subscriptions_table)
            .where(subscriptions_table.c.channel == channel)
            .order_by(subscriptions_table.c.seq.desc())
        )
        if profile_id is not None:
            query = query.where(subscriptions_table.c.profile_id == profile_id)
        return [_subscription(row) for row in self._conn.execute(query)]

    def save_subscription(self, subscription: Subscription) -> None:
        self._save(
            subscriptions_table,
            "subscription_id",
            {
                "subscription_id": subscription.subscription_id,
                "channel": subscription.channel,
                "name": subscription.name,
                "profile_id": subscription.profile_id,
                "events": list(subscription.events),
                "criteria": [c.as_dict() for c in subscription.criteria],
                "resources": list(subscription.resources),
                "users": list(subscription.users),
            },
        )

    def delete_subscription(self, subscription_id: str) -> bool:
        return self._delete(subscriptions_table, "subscription_id", subscription_id)

    def routes(self, event_type: str, origin: Criterion) -> list[Route]:
        """The subscriptions an event goes to, with their profile's URL, oldest first."""
        rows = self._conn.execute(
            select(subscriptions_table, profiles_table.c.notify_url)
            .join(profiles_table, profiles_table.c.profile_id == subscriptions_table.c.profile_id)
            .where(subscriptions_table.c.channel == VOICE_VIDEO)
            .order_by(subscriptions_table.c.seq)
        )
        return [
            Route(row.subscription_id, row.profile_id, row.notify_url)
            for row in rows
            if _subscription(row).routes(event_type, origin)
        ]


def overlapping(candidate: Subscription, others: Iterable[Subscription]) -> dict[str, set[str]]:
    """Per other subscription, the events ``candidate`` would share with it."""
    clashes = {
        other.subscription_id: candidate.shared_events(other)
        for other in others
        if other.subscription_id != candidate.subscription_id
    }
    return {ident: events for ident, events in clashes.items() if events}
