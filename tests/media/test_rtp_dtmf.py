"""RFC 4733 DTMF on RTP legs over real loopback sockets: each key press an endpoint sends is
reported once (retransmitted ends, a lost start, the same key twice, reordering, a relayed
leg), and the packets a SIP leg's port sends for a digit are what RFC 4733 asks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import numpy as np
import pytest

from gateway.media.dtmf_event import (
    KeyPresses,
    TelephoneEvent,
    digit_packets,
    pack_event,
    parse_event,
)
from gateway.media.ports import PortAllocator
from gateway.media.rtp import RtpHeader, build_rtp, parse_rtp
from gateway.media.session import RtpSession
from tests.media.test_rtp_session import free_range
from trunks.sip.media import RtpMediaPort
from trunks.sip.sdp import PCMU, NegotiatedMedia

LOCAL = "127.0.0.1"
TIMEOUT = 2.0
EVENT_PT = 101
SSRC = 0x5EED


class Endpoint:
    """A far end that writes its own packets: one stream (SSRC, sequence, 8 kHz clock)."""

    def __init__(self, target: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.target = (LOCAL, target)
        self.seq, self.ts = 1000, 50_000

    def audio(self) -> bytes:
        packet = build_rtp(0, self.seq, self.ts, SSRC, b"\xff" * 160)
        self.seq, self.ts = self.seq + 1, self.ts + 160
        return packet

    def press(self, digit: str, duration_ms: int = 100) -> list[bytes]:
        """A key press as it goes on the wire: every packet at the event's start timestamp."""
        start, packets = self.ts, []
        for payload, marker, _ in digit_packets(digit, duration_ms):
            packets.append(build_rtp(EVENT_PT, self.seq, start, SSRC, payload, marker))
            self.seq, self.ts = self.seq + 1, self.ts + 160
        return packets

    def send(self, *packets: bytes) -> None:
        for packet in packets:
            self.sock.sendto(packet, self.target)


class Digits:
    """The digits a session reports, and the datagrams it was handed, to wait on."""

    def __init__(self, session: RtpSession) -> None:
        self.keyed: list[str] = []
        self.datagrams = 0
        self._changed = asyncio.Event()
        session.on_digit = self._digit
        deliver = session.datagram_received

        def spy(data: bytes, addr: tuple[str, int]) -> None:
            deliver(data, addr)
            self.datagrams += 1
            self._changed.set()

        session.datagram_received = spy  # type: ignore[method-assign]

    def _digit(self, digit: str) -> None:
        self.keyed.append(digit)
        self._changed.set()

    @property
    def text(self) -> str:
        return "".join(self.keyed)

    async def until(self, datagrams: int) -> str:
        async with asyncio.timeout(TIMEOUT):
            while self.datagrams < datagrams:
                self._changed.clear()
                await self._changed.wait()
        return self.text


@pytest.fixture
def allocator() -> PortAllocator:
    return PortAllocator(*free_range(8))


@pytest.fixture
async def gateway_leg(allocator: PortAllocator) -> AsyncIterator[tuple[RtpSession, Endpoint]]:
    """The gateway's session of a leg that agreed on telephone-event, and its endpoint."""
    session = RtpSession(allocator, LOCAL, rtcp="off", telephone_event=EVENT_PT)
    await session.start()
    endpoint = Endpoint(session.local_port)
    yield session, endpoint
    endpoint.sock.close()
    session.close()


async def test_a_press_is_reported_at_its_first_packet_and_only_then(
    gateway_leg: tuple[RtpSession, Endpoint],
) -> None:
    session, endpoint = gateway_leg
    digits = Digits(session)
    endpoint.send(endpoint.audio(), endpoint.audio())
    one = endpoint.press("1")
    endpoint.send(one[0])
    assert await digits.until(3) == "1"  # at once, not at the end of the press
    endpoint.send(*one[1:], endpoint.audio())  # updates, the end three times
    endpoint.send(*endpoint.press("#"), endpoint.audio(), *endpoint.press("9"))
    assert await digits.until(3 + 6 + 1 + 7 + 1 + 7) == "1#9"


async def test_a_press_whose_start_was_lost_counts_once(
    gateway_leg: tuple[RtpSession, Endpoint],
) -> None:
    session, endpoint = gateway_leg
    digits = Digits(session)
    endpoint.send(endpoint.audio(), endpoint.audio())
    lost_all_but_the_ends = endpoint.press("7")[-3:]
    endpoint.send(*lost_all_but_the_ends, endpoint.audio())
    assert await digits.until(6) == "7"


async def test_the_same_key_twice_is_two_presses(
    gateway_leg: tuple[RtpSession, Endpoint],
) -> None:
    session, endpoint = gateway_leg
    digits = Digits(session)
    endpoint.send(endpoint.audio(), endpoint.audio())
    sent = [*endpoint.press("5"), *endpoint.press("5", 60), endpoint.audio()]
    endpoint.send(*sent)
    assert await digits.until(2 + len(sent)) == "55"


async def test_a_late_end_of_the_previous_press_is_no_new_press(
    gateway_leg: tuple[RtpSession, Endpoint],
) -> None:
    session, endpoint = gateway_leg
    digits = Digits(session)
    endpoint.send(endpoint.audio(), endpoint.audio())
    first, second = endpoint.press("3"), endpoint.press("3")
    endpoint.send(*first[:-1], second[0], first[-1], *second[1:])  # the last end reordered
    assert await digits.until(2 + 14) == "33"


async def test_audio_and_other_events_report_nothing(
    gateway_leg: tuple[RtpSession, Endpoint],
) -> None:
    session, endpoint = gateway_leg
    digits = Digits(session)
    flash = TelephoneEvent(16, True, 10, 800)  # hook flash: an RFC 4733 event, not a key
    endpoint.send(*(endpoint.audio() for _ in range(5)))
    endpoint.send(build_rtp(EVENT_PT, endpoint.seq, endpoint.ts, SSRC, pack_event(flash), True))
    endpoint.seq += 1
    endpoint.send(*(endpoint.audio() for _ in range(3)))
    assert await digits.until(9) == ""
    assert session.counters.packets_in == 9


async def test_a_relayed_leg_forwards_the_events_and_reports_the_presses(
    allocator: PortAllocator,
) -> None:
    """Endpoint -> b, relayed through the other leg's session ``out`` to C: C gets every
    packet unchanged, and b still reports each press once."""
    c = RtpSession(allocator, LOCAL, rtcp="off")
    out = RtpSession(allocator, LOCAL, rtcp="off")
    b = RtpSession(allocator, LOCAL, rtcp="off", telephone_event=EVENT_PT)
    for session in (c, out, b):
        await session.start()
    out.set_remote((LOCAL, c.local_port))
    b.relay = out
    endpoint = Endpoint(b.local_port)
    try:
        at_b, at_c = Digits(b), Digits(c)
        sent = [endpoint.audio(), *endpoint.press("4"), *endpoint.press("4"), endpoint.audio()]
        endpoint.send(*sent)
        assert await at_b.until(len(sent)) == "44"
        await at_c.until(len(sent))
        assert at_c.text == ""  # c has no telephone-event: nothing is reported there
        assert (b.counters.packets_in, out.counters.packets_out) == (len(sent), len(sent))
    finally:
        endpoint.sock.close()
        for session in (b, out, c):
            session.close()


def test_key_presses_are_told_by_ssrc_and_timestamp_across_the_wrap() -> None:
    presses = KeyPresses()
    end = pack_event(TelephoneEvent(11, True, 10, 800))
    assert presses.press(1, 0xFFFFFF00, end) == "#"
    assert presses.press(1, 0xFFFFFF00, end) is None
    assert presses.press(1, 0x00000100, end) == "#"  # after the timestamp wrapped: newer
    assert presses.press(2, 0x00000100, end) == "#"  # another stream's event at that time
    assert presses.press(2, 0x00000100, b"\x0b") is None  # too short to be an event


# -- sending --------------------------------------------------------------------------------


class Capture:
    """A UDP socket standing for the endpoint: what the gateway sent it, parsed."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.sock.settimeout(TIMEOUT)
        self.port = self.sock.getsockname()[1]

    def take(self, count: int) -> list[tuple[RtpHeader, bytes]]:
        packets = []
        for _ in range(count):
            parsed = parse_rtp(self.sock.recv(2048))
            assert parsed is not None
            packets.append(parsed)
        return packets


@pytest.fixture
async def sending_port(allocator: PortAllocator) -> AsyncIterator[tuple[RtpMediaPort, Capture]]:
    capture = Capture()
    session = RtpSession(allocator, LOCAL, rtcp="off")
    await session.start()
    port = RtpMediaPort(session)
    port.use(negotiated(capture.port, EVENT_PT), expected_ip=LOCAL)
    yield port, capture
    session.close()
    capture.sock.close()


def negotiated(remote_port: int, telephone_event: int | None) -> NegotiatedMedia:
    remote = (LOCAL, remote_port)
    return NegotiatedMedia(PCMU, telephone_event, remote, remote, "sendrecv", 20)


def ticks(port: RtpMediaPort, count: int, path: str) -> None:
    """What the media plane does each 20 ms: a G.711 payload (``push``) or samples (``write``)."""
    for _ in range(count):
        if path == "push":
            port.push(b"\x7f" * 160)
        else:
            port.write(np.zeros(160, np.int16))


@pytest.mark.parametrize("path", ["push", "write"])
async def test_a_digit_goes_out_as_rfc_4733_events_between_the_audio(
    sending_port: tuple[RtpMediaPort, Capture], path: str
) -> None:
    port, capture = sending_port
    ticks(port, 2, path)
    assert port.send_digit("5", 100) is True
    assert port.send_digit("#", 40) is True  # queued: after the 5
    ticks(port, 7 + 4 + 2, path)
    packets = capture.take(2 + 7 + 4 + 2)
    headers = [h for h, _ in packets]
    first = headers[0]
    # One stream: same SSRC, sequence numbers one by one, the clock 160 a tick under it all.
    assert {h.ssrc for h in headers} == {port.session.ssrc}
    assert [h.sequence for h in headers] == [(first.sequence + i) & 0xFFFF for i in range(15)]
    assert [h.payload_type for h in headers] == [0] * 2 + [EVENT_PT] * 11 + [0] * 2
    clock = [(first.timestamp + 160 * i) & 0xFFFFFFFF for i in range(15)]
    assert [h.timestamp for h in headers[:2]] == clock[:2]
    assert [h.timestamp for h in headers[13:]] == clock[13:]  # audio resumes on time
    # Each event keeps its start as its timestamp; the marker is on its first packet only.
    assert [h.timestamp for h in headers[2:9]] == [clock[2]] * 7
    assert [h.timestamp for h in headers[9:13]] == [clock[9]] * 4
    assert [h.marker for h in headers] == [False] * 2 + [True] + [False] * 6 + [True] + [False] * 5
    events = [parse_event(payload) for _, payload in packets[2:13]]
    assert [(e.digit, e.duration, e.end) for e in events] == [
        ("5", 160, False),
        ("5", 320, False),
        ("5", 480, False),
        ("5", 640, False),
        *[("5", 800, True)] * 3,
        ("#", 160, False),
        *[("#", 320, True)] * 3,
    ]


async def test_digits_sent_by_one_port_are_reported_once_by_the_other_end(
    allocator: PortAllocator,
) -> None:
    receiver = RtpSession(allocator, LOCAL, rtcp="off", telephone_event=EVENT_PT)
    sender = RtpSession(allocator, LOCAL, rtcp="off")
    for session in (receiver, sender):
        await session.start()
    try:
        digits = Digits(receiver)
        port = RtpMediaPort(sender)
        port.use(negotiated(receiver.local_port, EVENT_PT))
        for key in "1*1D":
            port.send_digit(key, 60)
        ticks(port, 2 + 4 * 6 + 2, "push")
        assert await digits.until(2 + 4 * 6 + 2) == "1*1D"
    finally:
        receiver.close()
        sender.close()


async def test_no_telephone_event_means_no_out_of_band_digit(allocator: PortAllocator) -> None:
    session = RtpSession(allocator, LOCAL, rtcp="off")
    await session.start()
    try:
        port = RtpMediaPort(session)
        assert port.send_digit("1", 100) is False  # nothing agreed yet
        port.use(negotiated(40000, None))
        assert port.send_digit("1", 100) is False
        port.use(negotiated(40000, EVENT_PT))
        with pytest.raises(ValueError, match="not a DTMF key"):
            port.send_digit("x", 100)
        with pytest.raises(ValueError, match="16 bits"):
            port.send_digit("1", 9000)  # more than 65535 ticks of 8 kHz
    finally:
        session.close()
