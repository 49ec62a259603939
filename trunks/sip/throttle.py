"""Failed-authentication throttle: stop password guessing from one source.

Intended use, wherever requests are challenged (registrar, INVITE authentication)::

    if not throttle.allowed(source_ip):
        ...  # 403 Forbidden on TCP/TLS, silently drop on UDP; do not even parse credentials
    if "Authorization" not in request.headers:
        ...  # 401 with server.challenge(): the first leg of every exchange, not a failure
    result = server.verify_request(request, users)
    if result.ok:
        throttle.success(source_ip)
    elif not result.stale:
        throttle.failure(source_ip, result.username)

Only wrong credentials count: a request without any and a stale nonce (honest clients hit those)
are not failures. A blocked source gets the same answer whatever it sends, so a scanner such as
sipvicious can neither keep guessing nor learn which extensions exist; answer unknown users and
wrong passwords identically for the same reason.
``success`` clears a source, so one good phone behind an office NAT keeps it unblocked.

Memory is bounded: at most ``max_sources`` failing and as many blocked sources are kept, the
least recently seen forgotten first. Blocks live in their own table so that a flood of one-off
failures (spoofed UDP sources) cannot push them out cheaply.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable

log = logging.getLogger(__name__)

# (time, hash of the claimed username): enough to count usernames tried, nothing to leak
_Failures = deque[tuple[float, int | None]]


class AuthThrottle:
    """Block a source for ``block_for`` seconds after ``max_failures`` within ``window``."""

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60,
        block_for: float = 300,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_sources: int = 10_000,
    ) -> None:
        if max_failures < 1 or max_sources < 1:
            raise ValueError("max_failures and max_sources must be positive")
        self.max_failures = max_failures
        self.window = window
        self.block_for = block_for
        self.max_sources = max_sources
        self._clock = clock
        self._failing: OrderedDict[str, _Failures] = OrderedDict()
        self._blocked: OrderedDict[str, float] = OrderedDict()  # source → blocked until

    def __len__(self) -> int:
        """Sources tracked, failing or blocked (for metrics)."""
        return len(self._failing) + len(self._blocked)

    def allowed(self, source: str) -> bool:
        until = self._blocked.get(source)
        if until is None:
            return True
        if self._clock() < until:
            return False
        del self._blocked[source]
        return True

    def failure(self, source: str, username: str | None = None) -> bool:
        """Count a failed authentication; True when it has just blocked ``source``."""
        if not self.allowed(source):
            return False  # already blocked: the block is not extended
        now = self._clock()
        failures = self._failing.pop(source, None) or deque(maxlen=self.max_failures)
        failures.append((now, None if username is None else hash(username)))
        if len(failures) == self.max_failures and now - failures[0][0] <= self.window:
            self._blocked[source] = now + self.block_for
            self._trim(self._blocked)
            usernames = len({user for _, user in failures if user is not None})
            log.warning(
                "auth throttle: blocking %s for %gs after %d failures within %gs "
                "(%d usernames tried)",
                source, self.block_for, len(failures), self.window, usernames,
            )  # fmt: skip
            return True
        self._failing[source] = failures  # re-inserted: now the most recent
        self._trim(self._failing)
        return False

    def success(self, source: str) -> None:
        self._failing.pop(source, None)

    def _trim(self, table: OrderedDict[str, _Failures] | OrderedDict[str, float]) -> None:
        while len(table) > self.max_sources:
            table.popitem(last=False)
