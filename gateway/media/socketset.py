"""Sockets read when their owner says so, not whenever the event loop gets to them.

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
from collections.abc import Callable

log = logging.getLogger(__name__)

# Rounds of reading per ``read``: each reads one datagram from every socket still ready, so a
# socket with more queued than this waits for the next read and a flood cannot hold up a tick.
MAX_ROUNDS = 4

Reader = Callable[[], None]  # reads (at most) one datagram from its socket and handles it


class SocketSet:
    """File descriptors, each with what reads one datagram from it; ``read`` reads the ready
    ones. Level-triggered: a datagram not read this time is found again the next."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._readers: dict[int, Reader] = {}

    def __len__(self) -> int:
        return len(self._readers)

    def __contains__(self, fd: int) -> bool:
        return fd in self._readers

    def add(self, fd: int, reader: Reader) -> None:
        self._epoll.register(fd, select.EPOLLIN)
        self._readers[fd] = reader

    def discard(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):  # closed already: epoll forgot it
                self._epoll.unregister(fd)

    def read(self) -> int:
        """Read every socket with a datagram queued, again while some stay ready (up to
        ``MAX_ROUNDS``); how many reads were made. A reader that raises is logged and
        the others are read all the same, as the event loop does for a protocol."""
        readers = self._readers
        count = 0
        for _ in range(MAX_ROUNDS):
            if not readers:
                break
            ready = self._epoll.poll(0, len(readers))
            if not ready:
                break
            for fd, _ in ready:
                reader = readers.get(fd)  # an earlier reader may have removed it
                if reader is None:
                    continue
                try:
                    reader()
                except Exception:
                    log.exception("reading socket %d failed", fd)
            count += len(ready)
        return count

    def close(self) -> None:
        self._readers.clear()
        self._epoll.close()
