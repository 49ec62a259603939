"""SIP transports (RFC 3261 §18): UDP, TCP and TLS sockets, stream framing, connection reuse.

The layer above sees parsed messages with the :class:`Peer` they came from, and asks to send a
message to a peer. Connections are kept by the peer's address, so a response goes back on the
connection its request came in on (§18.2.2), and outgoing requests reuse open connections.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from trunks.sip.message import (
    MAX_MESSAGE_SIZE,
    SipMessage,
    SipParseError,
    SipRequest,
    parse_message,
)

log = logging.getLogger(__name__)

RELIABLE = frozenset({"TCP", "TLS"})


@dataclass(frozen=True)
class Peer:
    """Where a message came from or goes to; ``transport`` is UDP, TCP or TLS."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE


MessageHandler = Callable[[SipMessage, Peer], None]
InvalidHandler = Callable[[bytes, Peer, SipParseError], None]


def stamp_received(request: SipRequest, peer: Peer) -> None:
    """RFC 3261 §18.2.1 and RFC 3581: note in the top Via where the request really came from."""
    via = request.top_via
    if "rport" in via.params:
        via.params["rport"] = str(peer.port)
    elif via.host.strip("[]") == peer.host:
        return
    via.params["received"] = peer.host
    request.headers.pop_first("Via")
    request.headers.add("Via", str(via), first=True)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            value = value.strip()
            return int(value) if value.isdigit() else -1
    return None


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, layer: TransportLayer) -> None:
        self.layer = layer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not data.strip(b"\r\n\x00 "):
            return  # keepalive
        self.layer.deliver(data, Peer("UDP", addr[0], addr[1]), stream=False)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class _Stream(asyncio.Protocol):
    """One TCP or TLS connection: frames messages by Content-Length (§18.3)."""

    def __init__(self, layer: TransportLayer, transport_name: str) -> None:
        self.layer = layer
        self.name = transport_name
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Peer(self.name, host, port)
        self.layer.connections[self.peer] = self

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.layer.connections.get(self.peer) is self:
            del self.layer.connections[self.peer]

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            if self.buffer.startswith(b"\r\n\r\n"):  # RFC 5626 keepalive ping: pong
                del self.buffer[:4]
                self.write(b"\r\n")
                continue
            if self.buffer.startswith(b"\r\n"):
                del self.buffer[:2]
                continue
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_MESSAGE_SIZE:
                    self._abort("header block too large")
                return
            length = _content_length(bytes(self.buffer[:end]))
            if length is None or length < 0 or end + 4 + length > MAX_MESSAGE_SIZE:
                self._abort("missing, bad or oversized Content-Length on a stream")
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            message = bytes(self.buffer[:total])
            del self.buffer[:total]
            assert self.peer is not None
            self.layer.deliver(message, self.peer, stream=True)

    def _abort(self, why: str) -> None:
        log.warning("closing %s connection from %s: %s", self.name, self.peer, why)
        self.buffer.clear()
        assert self.transport is not None
        self.transport.close()


class TransportLayer:
    """Every listening socket and open connection of one SIP endpoint."""

    def __init__(self, on_message: MessageHandler, on_invalid: InvalidHandler) -> None:
        self._on_message = on_message
        self._on_invalid = on_invalid
        self._udp: _Datagrams | None = None
        self._servers: list[asyncio.Server] = []
        self._client_tls: ssl.SSLContext | None = None
        self._connecting: dict[Peer, asyncio.Task[None]] = {}
        self.connections: dict[Peer, _Stream] = {}
        self.addresses: dict[str, tuple[str, int]] = {}

    async def listen(
        self, transport: str, host: str, port: int, tls: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        """Open a listening socket; returns the bound address (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        transport = transport.upper()
        if transport == "UDP":
            _, protocol = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(host, port)
            )
            self._udp = protocol
            assert protocol.transport is not None
            bound = protocol.transport.get_extra_info("sockname")[:2]
        else:
            if transport == "TLS" and tls is None:
                raise ValueError("TLS needs a server SSL context")
            server = await loop.create_server(
                lambda: _Stream(self, transport),
                host,
                port,
                ssl=tls if transport == "TLS" else None,
            )
            self._servers.append(server)
            bound = server.sockets[0].getsockname()[:2]
        self.addresses[transport] = (bound[0], bound[1])
        return self.addresses[transport]

    def use_client_tls(self, context: ssl.SSLContext) -> None:
        self._client_tls = context

    def deliver(self, data: bytes, peer: Peer, *, stream: bool) -> None:
        try:
            message = parse_message(data, stream=stream)
        except SipParseError as error:
            self._on_invalid(data, peer, error)
            return
        if isinstance(message, SipRequest):
            try:
                stamp_received(message, peer)
            except SipParseError as error:
                self._on_invalid(data, peer, error)
                return
        self._on_message(message, peer)

    def send(
        self,
        message: SipMessage,
        peer: Peer,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Send now if a socket is at hand; else connect in the background and then send."""
        data = message.serialize()
        if peer.transport == "UDP":
            if self._udp is None or self._udp.transport is None:
                raise RuntimeError("no UDP socket")
            self._udp.transport.sendto(data, (peer.host, peer.port))
            return
        connection = self.connections.get(peer)
        if connection is not None and connection.transport is not None:
            connection.write(data)
            return
        task = asyncio.get_running_loop().create_task(self._connect_and_send(peer, data, on_error))
        self._connecting[peer] = task
        task.add_done_callback(lambda _: self._connecting.pop(peer, None))

    async def _connect_and_send(
        self, peer: Peer, data: bytes, on_error: Callable[[Exception], None] | None
    ) -> None:
        earlier = self._connecting.get(peer)
        if earlier is not None and earlier is not asyncio.current_task():
            await asyncio.wait([earlier])
        connection = self.connections.get(peer)
        try:
            if connection is None:
                loop = asyncio.get_running_loop()
                tls = self._client_tls if peer.transport == "TLS" else None
                if peer.transport == "TLS" and tls is None:
                    tls = ssl.create_default_context()
                _, connection = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Stream(self, peer.transport), peer.host, peer.port, ssl=tls
                    ),
                    timeout=5,
                )
                # Index it under the address we dialled too, so later sends reuse it.
                self.connections[peer] = connection
            connection.write(data)
        except (OSError, TimeoutError, ssl.SSLError) as error:
            log.info("cannot reach %s: %s", peer, error)
            if on_error is not None:
                on_error(error)

    async def close(self) -> None:
        for task in list(self._connecting.values()):
            task.cancel()
        for connection in list(self.connections.values()):
            if connection.transport is not None:
                connection.transport.close()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        self.connections.clear()
