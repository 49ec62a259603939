"""RTP sessions over real loopback sockets, the port allocator, and the Prometheus page."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.media.jitterbuffer import JitterBuffer
from gateway.media.metrics import SessionRegistry, escape_label, render_prometheus
from gateway.media.ports import PortAllocator, PortsExhausted
from gateway.media.rtcp import ReceiverReport, RtcpPacket, SenderReport
from gateway.media.rtp import RtpHeader, build_rtp
from gateway.media.session import RtpSession
from gateway.media.socketset import RECEIVE_SIZE

LOCAL = "127.0.0.1"
TIMEOUT = 2.0


def free_range(pairs: int) -> tuple[int, int]:
    """An even range of port pairs, probed free now (a few may still be taken by then)."""
    while True:
        first = random.randrange(40000, 60000, 2)
        socks = []
        try:
            for port in range(first, first + 2 * pairs):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((LOCAL, port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return first, first + 2 * pairs - 1


class Received:
    """What a session delivered, and what its protocol was handed at all (dropped included),
    so tests wait on arrivals instead of sleeping."""

    def __init__(self, session: RtpSession) -> None:
        self.packets: list[tuple[RtpHeader, bytes]] = []
        self.datagrams = 0
        self._event = asyncio.Event()
        session.on_packet = self._packet
        deliver = session.datagram_received

        def spy(data: bytes, addr: tuple[str, int]) -> None:
            deliver(data, addr)
            self.datagrams += 1
            self._event.set()

        session.datagram_received = spy  # type: ignore[method-assign]

    def _packet(self, header: RtpHeader, payload: bytes) -> None:
        self.packets.append((header, payload))

    async def datagrams_reach(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while self.datagrams < count:
                self._event.clear()
                await self._event.wait()


@pytest.fixture
def allocator() -> PortAllocator:
    return PortAllocator(*free_range(8))


@pytest.fixture
async def pair(allocator: PortAllocator) -> AsyncIterator[tuple[RtpSession, RtpSession]]:
    """A knows B's address from "SDP"; B latches onto A (symmetric RTP)."""
    b = RtpSession(allocator, LOCAL, call_id="b", rtcp="off")
    await b.start()
    a = RtpSession(allocator, LOCAL, call_id="a", remote=(LOCAL, b.local_port), rtcp="off")
    await a.start()
    yield a, b
    a.close()
    b.close()


def test_ports_are_even_pairs(allocator: PortAllocator) -> None:
    pair = allocator.allocate(LOCAL)
    try:
        assert pair.port % 2 == 0
        assert pair.rtp.getsockname() == (LOCAL, pair.port)
        assert pair.rtcp is not None
        assert pair.rtcp.getsockname() == (LOCAL, pair.port + 1)
        assert allocator.in_use == {pair.port}
    finally:
        pair.close()
    assert allocator.in_use == set()


def test_a_port_in_use_elsewhere_is_skipped() -> None:
    first, last = free_range(2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOCAL, first + 1))  # the RTCP port of the first pair
        pair = PortAllocator(first, last).allocate(LOCAL)
        assert pair.port == first + 2
        pair.close()


def test_exhaustion_and_release() -> None:
    first, last = free_range(2)
    allocator = PortAllocator(first, last)
    pairs = [allocator.allocate(LOCAL), allocator.allocate(LOCAL, rtcp=False)]
    assert pairs[1].rtcp is None
    with pytest.raises(PortsExhausted, match=f"{first}-{last}"):
        allocator.allocate(LOCAL)
    pairs[0].close()
    assert allocator.allocate(LOCAL).port == pairs[0].port


def test_settings_range() -> None:
    class Settings:
        rtp_port_min, rtp_port_max = 20001, 20006

    with pytest.raises(ValueError):
        PortAllocator(20001, 20002)
    assert PortAllocator.from_settings(Settings)._ports == range(20002, 20006, 2)


async def test_two_sessions_exchange_packets(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    at_a, at_b = Received(a), Received(b)
    for i in range(50):
        assert a.send_payload(bytes([i]) * 160)
    await at_b.datagrams_reach(50)
    assert b.latched
    assert b.remote == (LOCAL, a.local_port)
    for _ in range(10):
        assert b.send_payload(b"\xff" * 160)
    await at_a.datagrams_reach(10)
    assert [payload[0] for _, payload in at_b.packets] == list(range(50))
    sequences = [header.sequence for header, _ in at_b.packets]
    assert sequences == [(sequences[0] + i) & 0xFFFF for i in range(50)]
    timestamps = [header.timestamp for header, _ in at_b.packets]
    assert all((t - s) & 0xFFFFFFFF == 160 for s, t in itertools.pairwise(timestamps))
    assert {header.ssrc for header, _ in at_b.packets} == {a.ssrc}
    ca, cb = a.counters, b.counters
    assert (ca.packets_out, cb.packets_in, ca.bytes_out, cb.bytes_in) == (50, 50, 8600, 8600)
    assert (cb.packets_out, ca.packets_in, cb.bytes_out, ca.bytes_in) == (10, 10, 1720, 1720)
    assert (cb.lost, cb.dropped_foreign, cb.dropped_malformed) == (0, 0, 0)


@pytest.fixture
async def relay_chain(
    allocator: PortAllocator,
) -> AsyncIterator[tuple[RtpSession, RtpSession, RtpSession, RtpSession]]:
    """A sends to B; B relays through the outgoing leg's session ``out`` to C."""
    c = RtpSession(allocator, LOCAL, rtcp="off")
    await c.start()
    out = RtpSession(allocator, LOCAL, remote=(LOCAL, c.local_port), rtcp="off")
    b = RtpSession(allocator, LOCAL, rtcp="off")
    b.relay = out
    for session in (out, b):
        await session.start()
    a = RtpSession(allocator, LOCAL, remote=(LOCAL, b.local_port), rtcp="off")
    await a.start()
    yield a, b, out, c
    for session in (a, b, out, c):
        session.close()


async def test_a_relay_forwards_the_datagrams_untouched(
    relay_chain: tuple[RtpSession, RtpSession, RtpSession, RtpSession],
) -> None:
    """A -> B, and B relays to the outgoing leg's session -> C."""
    a, b, out, c = relay_chain
    at_c = Received(c)
    for i in range(5):
        a.send_payload(bytes([i]) * 20, marker=i == 0, payload_type=8)
    await at_c.datagrams_reach(5)
    assert [(h.ssrc, h.payload_type, h.marker) for h, _ in at_c.packets] == [
        (a.ssrc, 8, i == 0) for i in range(5)
    ]
    assert [p for _, p in at_c.packets] == [bytes([i]) * 20 for i in range(5)]
    assert (b.counters.packets_in, out.counters.packets_out) == (5, 5)


async def test_a_relay_drops_what_it_would_not_accept_itself(
    relay_chain: tuple[RtpSession, RtpSession, RtpSession, RtpSession],
) -> None:
    """The relay's own path keeps the checks: malformed datagrams and a foreign source after
    the latch are counted and never forwarded."""
    a, b, out, c = relay_chain
    at_b, at_c = Received(b), Received(c)
    a.send_payload(b"a" * 160)  # latches b on a
    await at_c.datagrams_reach(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder:
        intruder.bind((LOCAL, 0))
        intruder.sendto(build_rtp(0, 1, 1, 0x1234, b"evil"), (LOCAL, b.local_port))
        intruder.sendto(b"\x00" * 20, (LOCAL, b.local_port))  # RTP version 0
        a.send_raw(b"\x80")  # from the latched source, but shorter than a header
        await at_b.datagrams_reach(4)
    a.send_payload(b"b" * 160)
    await at_c.datagrams_reach(2)
    assert [payload for _, payload in at_c.packets] == [b"a" * 160, b"b" * 160]
    assert (b.counters.dropped_foreign, b.counters.dropped_malformed) == (1, 2)
    assert (b.counters.packets_in, out.counters.packets_out) == (2, 2)


async def test_a_foreign_source_cannot_hijack_a_latched_stream(
    pair: tuple[RtpSession, RtpSession],
) -> None:
    a, b = pair
    at_b = Received(b)
    a.send_payload(b"a" * 160)
    await at_b.datagrams_reach(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder:
        intruder.bind((LOCAL, 0))
        intruder.sendto(build_rtp(0, 1, 1, 0x1234, b"evil"), (LOCAL, b.local_port))
        await at_b.datagrams_reach(2)
        assert b.counters.dropped_foreign == 1
        assert b.remote == (LOCAL, a.local_port)
        a.send_payload(b"a" * 160)
        await at_b.datagrams_reach(3)
        assert [payload for _, payload in at_b.packets] == [b"a" * 160] * 2
        assert b.counters.packets_in == 2
        assert b.remote_ssrc == a.ssrc
        # A re-INVITE moves the remote: now the new source latches and the old one is foreign.
        b.set_remote(None)
        intruder.sendto(build_rtp(0, 1, 1, 0x1234, b"new"), (LOCAL, b.local_port))
        await at_b.datagrams_reach(4)
        assert b.remote == intruder.getsockname()
        a.send_payload(b"a" * 160)
        await at_b.datagrams_reach(5)
    assert b.counters.dropped_foreign == 2
    assert at_b.packets[-1][1] == b"new"


async def test_latching_only_from_the_expected_ip(allocator: PortAllocator) -> None:
    b = RtpSession(allocator, LOCAL, rtcp="off", expected_ip="127.0.0.2")
    await b.start()
    at_b = Received(b)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.sendto(build_rtp(0, 1, 1, 1, b"x"), (LOCAL, b.local_port))
            await at_b.datagrams_reach(1)
        assert not b.latched
        assert b.counters.dropped_foreign == 1
    finally:
        b.close()


async def test_malformed_datagrams_are_counted(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    at_b = Received(b)
    a.send_raw(b"\x80")
    a.send_raw(b"\x40" + build_rtp(0, 1, 2, 3, b"v1")[1:])
    a.send_raw(build_rtp(0, 1, 2, 3, b"\x09"))  # a last octet of 9 without the P bit: fine
    await at_b.datagrams_reach(3)
    assert b.counters.dropped_malformed == 2
    assert b.counters.packets_in == 1
    assert b.remote == (LOCAL, a.local_port)  # only the valid packet latched


async def test_marker_and_ssrc_change(allocator: PortAllocator) -> None:
    jitter = JitterBuffer(min_ms=40, max_ms=40)  # packets come in a burst: no adapting here
    b = RtpSession(allocator, LOCAL, rtcp="off", jitter=jitter)
    await b.start()
    a = RtpSession(allocator, LOCAL, remote=(LOCAL, b.local_port), rtcp="off")
    await a.start()
    at_b = Received(b)
    try:
        a.send_payload(b"1", marker=True)
        a.send_payload(b"2")
        await at_b.datagrams_reach(2)
        assert [header.marker for header, _ in at_b.packets] == [True, False]
        assert jitter.get() == b"1"
        old = a.ssrc
        a.ssrc = old ^ 0xFFFF  # the far end starts a new stream
        a.send_payload(b"3", marker=True)
        await at_b.datagrams_reach(3)
        assert b.remote_ssrc == a.ssrc
        assert b.counters.ssrc_changes == 1
        assert jitter.depth == 1  # "2" of the old stream is gone; "3" waits for prefetch
        a.send_payload(b"4")
        await at_b.datagrams_reach(4)
        assert jitter.get() == b"3"
        assert jitter.get() == b"4"
    finally:
        a.close()
        b.close()


async def rtcp_pair(allocator: PortAllocator, mode: str) -> tuple[RtpSession, RtpSession]:
    b = RtpSession(allocator, LOCAL, rtcp=mode, rtcp_interval=0.05, cname="b@test")
    await b.start()
    a = RtpSession(allocator, LOCAL, remote=(LOCAL, b.local_port), rtcp=mode, rtcp_interval=0.05)
    await a.start()
    return a, b


def expect(
    session: RtpSession, kind: type, condition: Callable[[RtcpPacket], bool]
) -> asyncio.Future[RtcpPacket]:
    """A future for the first RTCP packet of ``kind`` at ``session`` meeting ``condition``."""
    future: asyncio.Future[RtcpPacket] = asyncio.get_running_loop().create_future()

    def seen(packets: list[RtcpPacket]) -> None:
        for packet in packets:
            if isinstance(packet, kind) and condition(packet) and not future.done():
                future.set_result(packet)

    session.on_rtcp = seen
    return future


async def test_a_session_not_reporting_sends_no_rtcp(allocator: PortAllocator) -> None:
    """While its endpoint is bypassed a session stays silent, RTCP included."""
    a, b = await rtcp_pair(allocator, "port")
    b.set_remote((LOCAL, a.local_port))
    b.reporting = False
    from_a: list[RtcpPacket] = []
    b.on_rtcp = from_a.extend
    from_b: list[RtcpPacket] = []
    a.on_rtcp = from_b.extend
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(from_a) < 4:  # at least 4 x 25 ms: b's first report was due by 75 ms
                await asyncio.sleep(0.01)
        assert from_b == []
        b.reporting = True
        async with asyncio.timeout(TIMEOUT):
            while not from_b:
                await asyncio.sleep(0.01)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("mode", ["port", "mux"])
async def test_rtcp_reports_are_exchanged(allocator: PortAllocator, mode: str) -> None:
    a, b = await rtcp_pair(allocator, mode)
    at_b = Received(b)
    try:
        for _ in range(20):
            a.send_payload(b"\0" * 160)
        await at_b.datagrams_reach(20)
        sr_at_b = expect(b, SenderReport, lambda p: p.packet_count == 20)
        sr = await asyncio.wait_for(sr_at_b, TIMEOUT)
        assert (sr.ssrc, sr.octet_count) == (a.ssrc, 3200)
        assert b.last_sender_report == sr
        # B has sent nothing: it sends RRs, whose block about A soon carries A's SR (LSR).
        rr_at_a = expect(a, ReceiverReport, lambda p: bool(p.reports and p.reports[0].lsr))
        rr = await asyncio.wait_for(rr_at_a, TIMEOUT)
        block = rr.reports[0]
        assert rr.ssrc == b.ssrc
        assert block.ssrc == a.ssrc
        assert block.highest_seq & 0xFFFF == (b.stats.max_seq)
        assert block.cumulative_lost == 0
        assert a.rtt is not None
        assert 0 <= a.rtt < 1
        assert b.counters.dropped_malformed == 0
        assert b.counters.packets_in == 20  # RTCP on a muxed port is not counted as RTP
    finally:
        a.close()
        b.close()


async def test_closing_frees_the_ports(allocator: PortAllocator) -> None:
    registry = SessionRegistry()
    session = RtpSession(allocator, LOCAL, registry=registry)
    await session.start()
    assert len(registry) == 1
    assert allocator.in_use == {session.local_port}
    session.close()
    assert allocator.in_use == set()
    assert len(registry) == 0


SAMPLE = re.compile(r'^(\w+)\{call_id="((?:[^"\\]|\\.)*)",(\w+)="(\w+)"\} (\d+)$')


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value)


async def test_prometheus_page(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    at_b = Received(b)
    a.call_id = 'odd "call"\\id\nx'
    for _ in range(3):
        a.send_payload(b"\0" * 160)
    a.send_raw(b"\0")
    await at_b.datagrams_reach(4)
    registry = SessionRegistry()
    registry.add(a)
    registry.add(b)
    page = render_prometheus(registry)
    assert page.endswith("\n")
    samples: dict[tuple[str, str, str], int] = {}
    types: dict[str, str] = {}
    for line in page.splitlines():
        if line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line.startswith("gateway_rtp_sessions "):
            assert line == "gateway_rtp_sessions 2"
        else:
            name, call, _, value, number = SAMPLE.match(line).groups()
            samples[name, unescape(call), value] = int(number)
    assert types == {
        "gateway_rtp_sessions": "gauge",
        "gateway_rtp_packets_total": "counter",
        "gateway_rtp_bytes_total": "counter",
        "gateway_rtp_dropped_total": "counter",
    }
    assert samples["gateway_rtp_packets_total", a.call_id, "out"] == 4
    assert samples["gateway_rtp_bytes_total", a.call_id, "out"] == 3 * 172 + 1
    assert samples["gateway_rtp_packets_total", "b", "in"] == 3
    assert samples["gateway_rtp_bytes_total", "b", "in"] == 3 * 172
    assert samples["gateway_rtp_dropped_total", "b", "malformed"] == 1
    assert samples["gateway_rtp_dropped_total", "b", "foreign"] == 0
    assert samples["gateway_rtp_dropped_total", "b", "late"] == 0
    assert samples["gateway_rtp_dropped_total", "b", "unsent"] == 0
    assert len(samples) == 2 * 8
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


class FullSocket:
    """A socket whose send buffer is full: every send is refused, as the kernel refuses one."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def sendto(self, data: bytes, addr: object) -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


async def test_a_packet_the_socket_refuses_is_dropped_and_counted(
    pair: tuple[RtpSession, RtpSession],
) -> None:
    a, _ = pair
    a._sock = FullSocket(a._sock)  # type: ignore[arg-type,assignment]
    assert not a.send_payload(b"\x00" * 160)
    assert not a.send_raw(b"\x80" + b"\x00" * 171)
    assert (a.counters.send_errors, a.counters.packets_out) == (2, 0)


async def test_a_datagram_too_large_to_read_whole_is_dropped_as_malformed(
    pair: tuple[RtpSession, RtpSession],
) -> None:
    a, b = pair
    a.send_raw(build_rtp(0, 1, 160, 0x1234, b"\x55" * RECEIVE_SIZE))  # cut short when read
    a.send_raw(build_rtp(0, 2, 320, 0x1234, b"\x55" * 160))
    async with asyncio.timeout(TIMEOUT):
        while b.counters.packets_in == 0:
            await asyncio.sleep(0.005)
    assert (b.counters.dropped_malformed, b.counters.packets_in) == (1, 1)
