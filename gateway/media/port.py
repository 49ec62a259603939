"""What the media plane needs from a leg: a port that gives the 20 ms frames the endpoint sends
and takes the frames it should hear. Simulated phones, RTP legs and players all look alike."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class MediaPort(Protocol):
    sample_rate: int

    def read(self) -> np.ndarray | None:
        """The next 20 ms the endpoint sends (int16), or None when it has nothing (silence)."""
        ...

    def write(self, samples: np.ndarray) -> None:
        """20 ms the endpoint hears (int16 at ``sample_rate``)."""
        ...


@runtime_checkable
class RelayablePort(MediaPort, Protocol):
    """A port that can forward its packets to a like port without decoding (RTP legs)."""

    def relay_with(self, other: object) -> bool: ...

    def stop_relay(self) -> None: ...
