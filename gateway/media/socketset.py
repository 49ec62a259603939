"""Datagram sockets read when their owner says so, not whenever the event loop gets to them.

The media plane reads its mixed legs' RTP sockets at the start of each tick through one
``SocketSet``: one ``epoll_wait`` finds every socket with a datagram queued, and each is read
then. A mixed leg's audio only plays on a tick, so reading it then adds no delay; what it
gains is that a packet which reached the kernel before a tick is in its jitter buffer for that
tick whatever the loop was busy with. Read by the event loop instead, such a packet missed its
tick whenever the loop was still busy when the tick fell due (uvloop runs due timers before it
polls for I/O), the buffer took that for network jitter, and a loaded gateway played most legs
40-60 ms late for nothing.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Rounds of reading per ``read``: each reads one datagram from every socket still ready, so a
# socket with more queued than this waits for the next read and a flood cannot hold up a tick.
MAX_ROUNDS = 4
# A datagram is read into this many bytes: more than any audio packet (an Opus frame is at
# most 1275 bytes). One that fills them may have been cut short: its reader drops it.
RECEIVE_SIZE = 4096

Handler = Callable[[bytes, Any], None]  # a datagram and the address it came from


class SocketSet:
    """Datagram sockets, each with what handles a datagram read from it; ``read`` reads the
    ready ones. Level-triggered: a datagram not read this time is found again the next."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        # fd: the socket's recvfrom and the handler (no frame of ours between the two)
        self._sockets: dict[int, tuple[Callable[[int], tuple[bytes, Any]], Handler]] = {}

    def __len__(self) -> int:
        return len(self._sockets)

    @property
    def closed(self) -> bool:
        return self._epoll.closed

    def __contains__(self, fd: int) -> bool:
        return fd in self._sockets

    def add(self, sock: socket.socket, handler: Handler) -> None:
        fd = sock.fileno()
        self._epoll.register(fd, select.EPOLLIN)
        self._sockets[fd] = (sock.recvfrom, handler)

    def discard(self, fd: int) -> None:
        if self._sockets.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):  # closed already: epoll forgot it
                self._epoll.unregister(fd)

    def read(self) -> int:
        """Read a datagram from every socket with one queued, again while some stay ready (up
        to ``MAX_ROUNDS``); how many were read. A handler that raises is logged and the others
        are read all the same, as the event loop does for a protocol."""
        sockets = self._sockets
        count = 0
        for _ in range(MAX_ROUNDS):
            if not sockets:
                break
            ready = self._epoll.poll(0, len(sockets))
            if not ready:
                break
            for fd, _ in ready:
                entry = sockets.get(fd)  # an earlier handler may have removed it
                if entry is None:
                    continue
                recvfrom, handler = entry
                try:
                    data, addr = recvfrom(RECEIVE_SIZE)
                except OSError:  # nothing queued after all, or an ICMP error reported
                    continue
                count += 1
                try:
                    handler(data, addr)
                except Exception:
                    log.exception("handling a datagram from socket %d failed", fd)
        return count

    def close(self) -> None:
        self._sockets.clear()
        self._epoll.close()
