"""RTP port pairs from a configured range: even RTP port, RTCP on the next one (RFC 3550 §11).

A port is taken by binding it, not by bookkeeping alone: a port another process (or another
gateway) holds fails to bind and is skipped, so two allocators never hand out the same one.
"""

from __future__ import annotations

import socket
from typing import Any


class PortsExhausted(RuntimeError):
    """No even port in the range had it and its RTCP neighbour free."""


class PortPair:
    """Bound, non-blocking UDP sockets for one RTP endpoint; ``close`` gives the port back."""

    def __init__(
        self,
        allocator: PortAllocator,
        port: int,
        rtp: socket.socket,
        rtcp: socket.socket | None,
    ) -> None:
        self._allocator = allocator
        self.port = port
        self.rtp = rtp
        self.rtcp = rtcp

    def close(self) -> None:
        """Close the sockets still open and free the port."""
        for sock in (self.rtp, self.rtcp):
            if sock is not None and sock.fileno() != -1:
                sock.close()
        self._allocator.release(self.port)


class PortAllocator:
    """Hands out even ports in ``[first, last]`` round robin, so a port just freed is not
    reused at once (late packets of the old call would land in the new one)."""

    def __init__(self, first: int, last: int) -> None:
        self._ports = range(first + first % 2, last, 2)  # port + 1 must be <= last too
        self._first, self._last = first, last
        if not self._ports:
            raise ValueError(f"RTP port range {first}-{last} holds no even port pair")
        self._cursor = 0
        self._in_use: set[int] = set()

    @classmethod
    def from_settings(cls, settings: Any) -> PortAllocator:
        return cls(settings.rtp_port_min, settings.rtp_port_max)

    @property
    def in_use(self) -> frozenset[int]:
        return frozenset(self._in_use)

    def allocate(self, host: str, *, rtcp: bool = True) -> PortPair:
        """Bind an RTP socket (and an RTCP one on port + 1 unless ``rtcp`` is False) on host."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(len(self._ports)):
            port = self._ports[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._ports)
            if port in self._in_use:
                continue
            rtp_sock = _bind(family, host, port)
            if rtp_sock is None:
                continue
            rtcp_sock = None
            if rtcp:
                rtcp_sock = _bind(family, host, port + 1)
                if rtcp_sock is None:
                    rtp_sock.close()
                    continue
            self._in_use.add(port)
            return PortPair(self, port, rtp_sock, rtcp_sock)
        raise PortsExhausted(
            f"no free RTP port pair on {host} in {self._first}-{self._last}: "
            f"{len(self._in_use)} held by this gateway, the rest bound elsewhere"
        )

    def release(self, port: int) -> None:
        self._in_use.discard(port)


def _bind(family: int, host: str, port: int) -> socket.socket | None:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    return sock
