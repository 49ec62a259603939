"""What the media plane needs from a leg: a port that gives the 20 ms frames the endpoint sends
and takes the frames it should hear. Simulated phones, RTP legs and players all look alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from gateway.media.codecs import Codec
    from gateway.media.jitterbuffer import Concealer
    from gateway.media.socketset import SocketSet


class MediaPort(Protocol):
    sample_rate: int

    def read(self) -> np.ndarray | None:
        """The next 20 ms the endpoint sends (int16), or None when it has nothing (silence)."""
        ...

    def write(self, samples: np.ndarray) -> None:
        """20 ms the endpoint hears (int16 at ``sample_rate``)."""
        ...


class PayloadPort(MediaPort, Protocol):
    """A port that can also hand the plane raw payloads: a tick then decodes and encodes all
    such legs with one call per codec instead of a ``read``/``write`` (and a numpy call or
    two) per leg, and conceals their missing frames with the port's ``concealer``.

    ``batch_codec`` is a codec with no state per leg (``Codec.batchable``) at the port's
    ``sample_rate``; None while the port has none, and the plane uses ``read``/``write``."""

    batch_codec: Codec | None
    concealer: Concealer

    def pull(self) -> bytes | None:
        """The next payload to play (None: nothing this tick, to be concealed)."""
        ...

    def push(self, payload: bytes) -> None:
        """Send one payload of ``batch_codec`` to the endpoint."""
        ...


class PolledPort(MediaPort, Protocol):
    """A port whose packets come from a socket the plane can read itself at each tick (RTP
    legs): a packet that reached the kernel before a tick then plays in it (see
    ``gateway.media.socketset``). The plane looks for ``read_on`` by name."""

    def read_on(self, sockets: SocketSet | None) -> None:
        """Have ``sockets`` read the port's socket (None: the event loop, as packets come)."""
        ...


@runtime_checkable
class RelayablePort(MediaPort, Protocol):
    """A port that can forward its packets to a like port without decoding (RTP legs)."""

    def can_relay_with(self, other: object) -> bool:
        """Whether packets can pass between the two unchanged (the same payload types)."""
        ...

    def relay_with(self, other: RelayablePort) -> None:
        """Forward packets both ways without decoding, until ``stop_relay``."""
        ...

    def stop_relay(self) -> None: ...


@dataclass(frozen=True)
class NativeMedia:
    """How an endpoint itself receives RTP, as its SDP said: what another endpoint must send
    to it directly when the gateway leaves the media path (bypass).

    ``codec`` is the encoding name and clock rate (``PCMU/8000``) and ``payload_type`` the
    number the endpoint expects for it; ``direction`` is the endpoint's own (``sendonly`` while
    it holds the call)."""

    address: str
    port: int
    codec: str
    payload_type: int
    telephone_event: int | None = None
    ptime: int | None = None
    direction: str = "sendrecv"

    def can_bypass_with(self, other: NativeMedia) -> bool:
        """Both endpoints can send each other RTP unchanged: the same codec under the same
        payload types (so no packet needs rewriting), both sending and receiving."""
        return (self.codec.lower(), self.payload_type, self.telephone_event) == (
            other.codec.lower(),
            other.payload_type,
            other.telephone_event,
        ) and self.direction == other.direction == "sendrecv"
