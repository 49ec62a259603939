"""Which host of a STATIC trunk a call goes to: FAILOVER (the first host that is up, in the
order given) or ROUND_ROBIN (each call starts one host further), skipping hosts that the
OPTIONS keepalive found down, and trying the next host when one does not answer at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from trunks.sip.endpoint import SipEndpoint
from trunks.sip.transport import Peer
from trunks.sip.trunk_store import Destination, SipTrunk
from trunks.sip.uri import SipUri

log = logging.getLogger(__name__)

HostKey = tuple[str, str, int | None]  # trunk id, host, port


def destination_uri(trunk: SipTrunk, destination: Destination, user: str | None) -> SipUri:
    scheme = "sips" if trunk.config.tls else "sip"
    return SipUri(scheme, destination.host, user, port=destination.port or None)


def destination_peer(trunk: SipTrunk, uri: SipUri) -> Peer:
    return Peer("TLS" if trunk.config.tls else "UDP", *uri.address())


class TrunkHealth:
    """Hosts found down; a host is up until a keepalive or a call attempt fails."""

    def __init__(self) -> None:
        self._down: set[HostKey] = set()
        self._turn: dict[str, int] = {}

    def mark(self, trunk_id: str, destination: Destination, up: bool) -> None:
        key = (trunk_id, destination.host, destination.port)
        if up and key in self._down:
            self._down.discard(key)
            log.warning("SIP trunk %s host %s is up again", trunk_id, destination.host)
        elif not up and key not in self._down:
            self._down.add(key)
            log.warning("SIP trunk %s host %s is down", trunk_id, destination.host)

    def is_up(self, trunk_id: str, destination: Destination) -> bool:
        return (trunk_id, destination.host, destination.port) not in self._down

    def order(self, trunk: SipTrunk) -> list[Destination]:
        """Every destination, in the order to try them: hosts that are up first."""
        hosts = trunk.destinations()
        if trunk.config.strategy == "ROUND_ROBIN" and hosts:
            turn = self._turn.get(trunk.id, 0)
            self._turn[trunk.id] = turn + 1
            start = turn % len(hosts)
            hosts = hosts[start:] + hosts[:start]
        return sorted(hosts, key=lambda d: not self.is_up(trunk.id, d))


class OptionsMonitor:
    """Sends OPTIONS to every host of each STATIC trunk with ``sipOptions.enabled``: any answer
    marks a host up, no answer (timeout, refused connection) marks it down."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        trunks: Callable[[], list[SipTrunk]],
        health: TrunkHealth,
        interval: float = 30.0,
    ) -> None:
        self._endpoint = endpoint
        self._trunks = trunks
        self._health = health
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sip-options")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            self.probe_all()
            await asyncio.sleep(self._interval)

    def probe_all(self) -> None:
        for trunk in self._trunks():
            if trunk.type == "STATIC" and trunk.config.sip_options_enabled and trunk.enabled:
                for destination in trunk.destinations():
                    self._probe(trunk, destination)

    def _probe(self, trunk: SipTrunk, destination: Destination) -> None:
        uri = destination_uri(trunk, destination, None)
        self._endpoint.send_request(
            "OPTIONS",
            uri,
            destination_peer(trunk, uri),
            lambda _response: self._health.mark(trunk.id, destination, up=True),
            lambda _status, _reason: self._health.mark(trunk.id, destination, up=False),
        )
