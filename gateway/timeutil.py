"""Timestamps in the Calls API's format: ``2026-01-15T11:59:30.000+0000``."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_time(text: str) -> datetime:
    """Accept the API's format and ISO 8601 variants.

    ``Z``, ``+00:00``, and a ``+`` that an unencoded query string turned into a space.
    """
    cleaned = text.strip()
    if " " in cleaned and "T" in cleaned:
        head, _, tail = cleaned.rpartition(" ")
        cleaned = f"{head}+{tail}"
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
