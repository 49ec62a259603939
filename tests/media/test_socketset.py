"""Sockets read on the media plane's tick: the SocketSet itself, and mixed RTP legs whose
packets wait in the kernel for the tick (however busy the loop) and go back to the event loop
when their bridge dissolves."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from gateway.media.codecs import PCMU
from gateway.media.plane import Bridge, MediaPlane
from gateway.media.ports import PortAllocator
from gateway.media.rtp import build_rtp
from gateway.media.session import RtpSession
from gateway.media.socketset import MAX_ROUNDS, SocketSet
from tests.media.test_rtp_session import LOCAL, TIMEOUT, free_range
from trunks.sip.media import RtpMediaPort
from trunks.sip.sdp import Codec, NegotiatedMedia


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    sock.setblocking(False)
    return sock


def queued(sock: socket.socket) -> bool:
    """Whether a datagram waits in the socket (without reading it)."""
    return bool(select.select([sock], [], [], 0)[0])


def wait_queued(sock: socket.socket) -> None:
    assert select.select([sock], [], [], TIMEOUT)[0], "the datagram never arrived"


def deliver(*datagrams: tuple[socket.socket, bytes]) -> tuple[str, int]:
    """Send each payload to its socket, in order, and wait until every one has a datagram
    queued; the sender's address."""
    with udp() as sender:
        for sock, payload in datagrams:
            sender.sendto(payload, sock.getsockname())
        for sock, _ in datagrams:
            wait_queued(sock)
        return sender.getsockname()


@pytest.fixture
def sockets() -> Iterator[tuple[SocketSet, list[socket.socket]]]:
    polled = SocketSet()
    socks = [udp() for _ in range(3)]
    yield polled, socks
    polled.close()
    for sock in socks:
        sock.close()


def test_read_takes_every_ready_socket_and_skips_the_idle(
    sockets: tuple[SocketSet, list[socket.socket]],
) -> None:
    polled, (a, b, idle) = sockets
    got: list[tuple[str, bytes, tuple[str, int]]] = []
    for name, sock in (("a", a), ("b", b), ("idle", idle)):
        polled.add(sock, lambda data, addr, name=name: got.append((name, data, addr)))
    origin = deliver((a, b"to a"), (b, b"to b"))
    assert polled.read() == 2
    assert sorted(got) == [("a", b"to a", origin), ("b", b"to b", origin)]
    assert polled.read() == 0  # nothing left: nothing read


def test_a_flooded_socket_is_read_a_few_times_per_read(
    sockets: tuple[SocketSet, list[socket.socket]],
) -> None:
    polled, (a, _, _) = sockets
    got: list[bytes] = []
    polled.add(a, lambda data, _: got.append(data))
    deliver(*((a, bytes([i])) for i in range(MAX_ROUNDS + 3)))
    assert polled.read() == MAX_ROUNDS  # a flood cannot hold up the tick...
    assert polled.read() == 3  # ...and what is left is read the next time
    assert got == [bytes([i]) for i in range(MAX_ROUNDS + 3)]


def test_a_handler_that_raises_does_not_stop_the_others(
    sockets: tuple[SocketSet, list[socket.socket]], caplog: pytest.LogCaptureFixture
) -> None:
    polled, (a, b, _) = sockets
    got: list[bytes] = []

    def broken(data: bytes, addr: object) -> None:
        raise RuntimeError("bad handler")

    polled.add(a, broken)
    polled.add(b, lambda data, _: got.append(data))
    deliver((a, b"x"), (b, b"y"))
    assert polled.read() == 2
    assert got == [b"y"]
    assert "bad handler" in caplog.text
    assert not queued(a)  # the datagram was read all the same: not handled again


def test_discard_stops_reading_and_tolerates_a_closed_socket(
    sockets: tuple[SocketSet, list[socket.socket]],
) -> None:
    polled, (a, b, _) = sockets
    polled.add(a, lambda data, addr: pytest.fail("a discarded socket was read"))
    polled.add(b, lambda data, addr: None)
    fd = b.fileno()
    polled.discard(a.fileno())
    b.close()
    polled.discard(fd)  # closed first: epoll forgot it already
    polled.discard(fd)  # and twice is harmless
    deliver((a, b"x"))
    assert polled.read() == 0 and len(polled) == 0


# Mixed RTP legs in a media plane.

PCMU_SDP = Codec(PCMU.payload_type, "PCMU", 8000)


@dataclass
class Mixed:
    """Two RTP legs, each with a far end, in one bridge of a plane that has ticked."""

    plane: MediaPlane
    bridge: Bridge
    a: RtpMediaPort
    b: RtpMediaPort
    far_a: socket.socket
    far_b: socket.socket


@pytest.fixture
async def mixed() -> AsyncIterator[Mixed]:
    allocator = PortAllocator(*free_range(4))
    plane = MediaPlane()
    far_ends = [udp(), udp()]
    ports = []
    for index, far in enumerate(far_ends):
        session = RtpSession(allocator, LOCAL, call_id=f"leg{index}", rtcp="off")
        port = RtpMediaPort(session)
        await session.start()
        remote = far.getsockname()
        port.use(NegotiatedMedia(PCMU_SDP, None, remote, None, "sendrecv", 20))
        ports.append(port)
    bridge = plane.bridge(*ports)
    await ticks(plane, 1)  # the tick that takes their sockets
    yield Mixed(plane, bridge, *ports, *far_ends)
    plane.close()
    for port in ports:
        port.session.close()
    for far in far_ends:
        far.close()


async def ticks(plane: MediaPlane, count: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        target = plane.ticks + count
        while plane.ticks < target:
            await asyncio.sleep(0.005)


def send_from(far: socket.socket, port: RtpMediaPort, payload: bytes) -> None:
    far.sendto(build_rtp(0, 1, 160, 0xA, payload), (LOCAL, port.session.local_port))


async def heard(far: socket.socket, payload: bytes) -> bool:
    """Wait until the far end receives an RTP packet carrying ``payload``."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            try:
                data = far.recv(2048)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            if data[12:] == payload:
                return True


def rtp_socket(port: RtpMediaPort) -> socket.socket:
    pair = port.session._pair
    assert pair is not None
    return pair.rtp


async def test_a_mixed_leg_is_read_on_the_tick_and_hears_the_other_leg(mixed: Mixed) -> None:
    plane, a, b = mixed.plane, mixed.a, mixed.b
    assert rtp_socket(a).fileno() in plane.sockets and rtp_socket(b).fileno() in plane.sockets
    # Between ticks the packet stays in the kernel however often the loop runs: the tick,
    # not the event loop, reads it, so it cannot miss the tick it arrived before.
    send_from(mixed.far_a, a, b"\x55" * 160)
    wait_queued(rtp_socket(a))
    assert not asyncio.get_running_loop().remove_reader(rtp_socket(a).fileno())
    # The next tick reads it and plays it to the other leg: b's far end hears a's payload.
    assert await heard(mixed.far_b, b"\x55" * 160)
    assert a.session.counters.packets_in == 1


async def test_a_dissolved_bridge_gives_its_legs_back_to_the_event_loop(mixed: Mixed) -> None:
    assert len(mixed.plane.sockets) == 2
    mixed.plane.dissolve(mixed.bridge)
    assert len(mixed.plane.sockets) == 0
    mixed.a.relay_with(mixed.b)  # a relayed leg must forward each packet as it comes
    send_from(mixed.far_a, mixed.a, b"relayed")
    assert await heard(mixed.far_b, b"relayed")
    assert mixed.a.session.counters.packets_in == 1


async def test_a_leg_removed_from_a_live_bridge_is_read_by_the_loop_again(mixed: Mixed) -> None:
    plane, a, b = mixed.plane, mixed.a, mixed.b
    mixed.bridge.remove(a)  # as a conference removes a participant: seen at the next tick
    await ticks(plane, 2)
    assert rtp_socket(a).fileno() not in plane.sockets
    assert rtp_socket(b).fileno() in plane.sockets
    send_from(mixed.far_a, a, b"\x55" * 160)
    async with asyncio.timeout(TIMEOUT):  # the loop reads it as it comes: no tick for a now
        while a.session.counters.packets_in == 0:
            await asyncio.sleep(0.005)
    fds = [rtp_socket(port).fileno() for port in (a, b)]
    a.session.close()  # a closed session leaves no reader behind, on the loop or the plane
    b.session.close()
    loop = asyncio.get_running_loop()
    assert not any(loop.remove_reader(fd) for fd in fds)
    assert len(plane.sockets) == 0


async def test_a_leg_bridged_before_its_session_started_is_read_on_the_tick() -> None:
    allocator = PortAllocator(*free_range(2))
    plane = MediaPlane()
    session = RtpSession(allocator, LOCAL, call_id="early", rtcp="off")
    session.read_on(plane.sockets)  # what the plane does to a port it found bridged
    await session.start()
    try:
        fd = session._pair.rtp.fileno()  # type: ignore[union-attr]
        assert fd in plane.sockets
        assert not asyncio.get_running_loop().remove_reader(fd)
    finally:
        session.close()
        plane.close()
    assert len(plane.sockets) == 0


async def test_a_closed_plane_can_bridge_again(mixed: Mixed) -> None:
    plane = mixed.plane
    plane.close()
    assert len(plane.sockets) == 0
    plane.bridge(mixed.a, mixed.b)
    await ticks(plane, 2)
    assert rtp_socket(mixed.a).fileno() in plane.sockets
