"""Decoded audio kept in memory for replay, least recently used out first, within a byte budget.

Uploaded files and URL content are decoded once and played many times (every ``play``, every
loop): the cache holds the 8 kHz samples. ``get`` also makes concurrent requests for one key
share one load: two calls starting the same announcement fetch and decode it once. A load
that fails is not kept: the next ``get`` tries again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

import numpy as np


class AudioCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._loading: dict[Hashable, asyncio.Task[np.ndarray]] = {}

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    async def get(self, key: Hashable, load: Callable[[], Awaitable[np.ndarray]]) -> np.ndarray:
        """The cached samples of ``key``, else ``load()``'s, shared with every concurrent
        caller of the same key. The array is read-only: it is shared."""
        samples = self._entries.get(key)
        if samples is not None:
            self._entries.move_to_end(key)
            return samples
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(key, load))
            task.add_done_callback(_retrieve)
            self._loading[key] = task
        # One caller giving up (cancelled) does not cancel the load the others wait for.
        return await asyncio.shield(task)

    def put(self, key: Hashable, samples: np.ndarray) -> np.ndarray:
        """Keep ``samples`` (read-only from now on); older entries go to make room. Audio
        larger than the whole budget is returned but not kept."""
        samples.setflags(write=False)
        self.discard(key)
        if samples.nbytes > self.budget_bytes:
            return samples
        while self._bytes + samples.nbytes > self.budget_bytes:
            _, oldest = self._entries.popitem(last=False)
            self._bytes -= oldest.nbytes
        self._entries[key] = samples
        self._bytes += samples.nbytes
        return samples

    def discard(self, key: Hashable) -> None:
        samples = self._entries.pop(key, None)
        if samples is not None:
            self._bytes -= samples.nbytes

    async def close(self) -> None:
        """Cancel loads in flight (their callers see CancelledError) and forget everything."""
        tasks = list(self._loading.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._entries.clear()
        self._bytes = 0

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[np.ndarray]]) -> np.ndarray:
        try:
            return self.put(key, await load())
        finally:
            del self._loading[key]


def _retrieve(task: asyncio.Task[np.ndarray]) -> None:
    """A load whose every caller gave up: its error is nobody's to log."""
    if not task.cancelled():
        task.exception()
