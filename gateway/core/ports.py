"""What the core needs from the outside, as protocols: adapters and sinks implement them.

The core never imports an adapter (``trunks/``) or a delivery mechanism; the composition root
(``gateway/app.py``) hands it objects that satisfy these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from gateway.core.errors import ErrorCode
    from gateway.core.leg import Leg
    from gateway.core.query import LegQuery
    from gateway.media.port import MediaPort, NativeMedia


class MediaRedirectFailed(Exception):
    """The endpoint did not take the new media path (refused the re-INVITE, or no answer);
    its media stays where it was."""


class ContentUnavailable(Exception):
    """Audio that cannot be played (not found, not audio, too big, too slow to fetch): what an
    action's ERROR event says, as ``errorCode`` and ``errorDetails``."""

    def __init__(self, details: str, error_code: str = "FILE_CAN_NOT_BE_PLAYED") -> None:
        super().__init__(details)
        self.details = details
        self.error_code = error_code


class AudioFetcher(Protocol):
    """Audio behind a URL (``play`` content of type URL), fetched once and cached."""

    async def fetch(self, url: str) -> np.ndarray:
        """The audio as int16 mono 8 kHz samples; raises :class:`ContentUnavailable`."""
        ...


class EventSink(Protocol):
    """Takes one Calls API event envelope (``type``, ``callId``, ``timestamp``, ``properties``...).

    ``publish`` must make the event durable before it returns: a restart after it loses nothing.
    Events with the same ``order_key`` keep their order; without one, the event's ``callId``
    (else ``dialogId``, else ``conferenceId``) is the key. The core passes one key for every
    event of a conversation (a dialog's legs and the dialog itself), so they stay in order.
    """

    def publish(self, event: dict[str, Any], order_key: str | None = None) -> None: ...


class LegAdapter(Protocol):
    """Carries legs of one endpoint type (PHONE, SIP, WEBRTC...) for the core.

    Verbs return as soon as the request is on its way; what the far end does comes back through
    the :class:`~gateway.core.calls.CallControl` callbacks (``on_ringing``, ``on_answered``...).
    """

    endpoint_type: str

    def serves(self, endpoint: dict[str, Any]) -> bool:
        """Whether this adapter carries calls to ``endpoint`` (of its endpoint type)."""
        ...

    def check_endpoint(self, endpoint: dict[str, Any]) -> dict[str, list[str]]:
        """Validation errors of a create-call endpoint, by field name (empty when valid)."""
        ...

    async def originate(self, leg: Leg) -> None: ...

    async def send_ringing(self, leg: Leg) -> None: ...

    async def pre_answer(self, leg: Leg) -> None: ...

    async def answer(self, leg: Leg) -> None: ...

    async def hangup(self, leg: Leg, cause: ErrorCode) -> None:
        """Release the far end; must not call back into the core for this leg."""
        ...

    def media_port(self, leg: Leg) -> MediaPort | None:
        """Where the leg's audio comes and goes when the media plane is in its path."""
        ...

    def native_media(self, leg: Leg) -> NativeMedia | None:
        """How the endpoint itself receives RTP (from its SDP), for bypass decisions; None
        when it has no RTP of its own (a simulated phone) or has not agreed on media yet."""
        ...

    async def redirect_media(self, leg: Leg, target: NativeMedia | None) -> NativeMedia:
        """Re-INVITE the endpoint so that it sends its RTP to ``target`` (another endpoint:
        bypass) or to the gateway again (None: re-anchor). Returns the endpoint's native media
        from its answer. Raises :class:`MediaRedirectFailed` when the endpoint does not take
        it; the leg's media then stays where it was. While a leg is redirected, re-offers from
        its endpoint are answered pointing at the same target, and a change of the endpoint's
        own native media is reported through ``CallControl.on_media_changed``."""
        ...

    def send_dtmf(self, leg: Leg, digit: str, duration_ms: int) -> bool:
        """Start sending one DTMF digit (``0-9*#A-D``) out of band (RFC 4733), lasting
        ``duration_ms``, if the endpoint agreed on telephone-event; return at once. False when
        it did not: the core then plays the digit in-band. Digits the endpoint sends out of band
        come back through ``CallControl.on_dtmf``, once per key press."""
        ...


class LegStore(Protocol):
    """Where legs are kept: live ones as they change, ended ones as history."""

    def save(self, leg: Leg) -> None: ...

    def get(self, leg_id: str) -> Leg | None: ...

    def query(self, query: LegQuery, offset: int, limit: int) -> tuple[list[Leg], int]: ...

    def unfinished(self) -> list[Leg]: ...


class NumberDirectory(Protocol):
    """Numbers the user owns (DIDs), each linked to a calls configuration."""

    def configuration_for(self, number: str) -> str | None: ...


class ConfigurationDirectory(Protocol):
    def exists(self, calls_configuration_id: str) -> bool: ...
