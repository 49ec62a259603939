"""One leg's RTP endpoint: bound UDP sockets, symmetric RTP, counters and periodic RTCP.

The event loop reads the sockets as packets come (a reader per socket, no transport), except
that a mixed leg's RTP socket is read by the media plane at each tick (``read_on``: see
``gateway.media.socketset``); sends go straight to the socket, and a packet the socket's
buffer has no room for is dropped and counted (``send_errors``), never queued behind.

``datagram_received`` is the hot path. A relaying session (``relay``: the other leg's
session) checks the version and the source, counts, and sends the datagram on as it is: no
parse, no statistics, no payload copy, since a relay's capacity is this path's cost and the
relayed stream's loss and jitter are for its far ends to report. Otherwise it parses the
header, checks the source, counts, records the sequence number, and hands the audio payload
(of ``payload_type``) to the jitter buffer by its extended sequence number (a mixer pulls
``jitter.get()`` per tick), and/or header and payload to ``on_packet``. Packets of the
``telephone_event`` payload type (RFC 4733) are told apart by that one compare, after the audio
one fails, and each key press they carry goes to ``on_digit`` once; a relaying session does
the same compare on the second octet, forwards, and reports the digit too.
No task, timer or object per packet beyond those handed on. RTCP runs on one
``call_later`` timer per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gateway.media.dtmf_event import KeyPresses
from gateway.media.frame import NARROWBAND
from gateway.media.jitterbuffer import JitterBuffer
from gateway.media.metrics import SessionRegistry
from gateway.media.ports import PortAllocator, PortPair
from gateway.media.rtcp import (
    ReceiverReport,
    ReceptionStats,
    RtcpPacket,
    SenderReport,
    build_rr,
    build_sr,
    ntp_middle,
    ntp_timestamp,
    parse_rtcp,
)
from gateway.media.rtp import FIXED_HEADER, HEADER_SIZE, RtpHeader, header_of, is_rtcp, unpack_rtp
from gateway.media.socketset import RECEIVE_SIZE, SocketSet

log = logging.getLogger(__name__)

Address = tuple[str, int]
PacketHandler = Callable[[RtpHeader, bytes], None]  # header and payload
RtcpHandler = Callable[[list[RtcpPacket]], None]
RtcpMode = Literal["port", "mux", "off"]

_now = time.monotonic
_pack_header = FIXED_HEADER.pack
_unpack_header = FIXED_HEADER.unpack_from


@dataclass(slots=True)
class RtpCounters:
    """Per-leg counters. ``bytes_*`` are whole datagrams; ``send_errors`` what the socket
    refused to send; ``late`` is what the jitter buffer refused as too late, ``lost`` what the
    sender's sequence numbers say never arrived."""

    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    dropped_malformed: int = 0
    dropped_foreign: int = 0
    send_errors: int = 0
    late: int = 0
    lost: int = 0
    ssrc_changes: int = 0


class RtpSession:
    """The RTP endpoint of one leg. Create, ``await start()``, ``close()`` when the leg ends.

    Remote address: ``remote`` is where we send (from the SDP; None if unknown). With
    ``latch`` (symmetric RTP, for NATed peers) the first valid packet from ``expected_ip``
    (any IP if None) fixes the remote to its source; later packets from any other source are
    dropped and counted, never followed. ``set_remote`` (a re-INVITE) unlatches.
    """

    def __init__(
        self,
        allocator: PortAllocator,
        local_ip: str,
        *,
        call_id: str = "",
        remote: Address | None = None,
        latch: bool = True,
        expected_ip: str | None = None,
        payload_type: int = 0,
        telephone_event: int | None = None,
        clock_rate: int = NARROWBAND,
        rtcp: RtcpMode = "port",
        rtcp_interval: float = 5.0,
        cname: str | None = None,
        jitter: JitterBuffer | None = None,
        on_packet: PacketHandler | None = None,
        on_rtcp: RtcpHandler | None = None,
        registry: SessionRegistry | None = None,
        on_digit: Callable[[str], None] | None = None,
    ) -> None:
        self.call_id = call_id
        self.local_ip = local_ip
        self.payload_type = payload_type
        self.telephone_event = telephone_event
        self.on_digit = on_digit  # told each key press the endpoint sends as RFC 4733 events
        self._presses = KeyPresses()
        self.clock_rate = clock_rate
        self.jitter = jitter
        self.relay: RtpSession | None = None  # the session relayed packets are sent from
        self.on_latched: Callable[[], None] | None = None  # told where the packets come from
        # False while the endpoint's RTP bypasses the gateway: it hears nothing from us then,
        # RTCP included (its RTCP goes to the other endpoint, as its RTP does).
        self.reporting = True
        self.on_packet = on_packet
        self.on_rtcp = on_rtcp
        self.ssrc = random.getrandbits(32)
        self.cname = cname or f"{self.ssrc:08x}@{local_ip}"
        self.rtt: float | None = None  # seconds, from the peer's report blocks about us
        self.last_sender_report: SenderReport | None = None
        self._allocator = allocator
        self._rtcp_mode = rtcp
        self._mux = rtcp == "mux"
        self._rtcp_interval = rtcp_interval
        self._registry = registry
        self._counters = RtpCounters()
        self._stats: ReceptionStats | None = None
        self._lost_before = 0  # cumulative loss of streams (SSRCs) before the current one
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._sent_packets = 0
        self._sent_octets = 0  # payload octets, for the SR
        self._sent_at_report = 0
        self._last_send = 0.0
        self._last_send_ts = self._ts
        self._pair: PortPair | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None  # the RTP socket, while started
        self._polled: SocketSet | None = None  # what reads it; None: the event loop
        self._report_timer: asyncio.TimerHandle | None = None
        self._remote: Address | None = None
        self._source: Address | None = None  # the one address packets are accepted from
        self._rtcp_remote: Address | None = None
        self._latching = latch
        self._expected_ip = expected_ip
        self.set_remote(remote, latch=latch, expected_ip=expected_ip)

    async def start(self) -> None:
        """Bind a port pair and start receiving; RTCP reports begin after about an interval."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._pair = self._allocator.allocate(self.local_ip, rtcp=self._rtcp_mode == "port")
        self._sock = self._pair.rtp
        try:
            self._watch(self._polled)
            if self._pair.rtcp is not None:
                loop.add_reader(self._pair.rtcp.fileno(), self._rtcp_readable)
        except BaseException:  # no reader left behind, and the ports go back
            self.close()
            raise
        if self._rtcp_mode != "off":
            self._schedule_report(loop)
        if self._registry is not None:
            self._registry.add(self)

    def read_on(self, polled: SocketSet | None) -> None:
        """Have ``polled`` read the RTP socket (the media plane's tick, for a mixed leg: see
        ``gateway.media.socketset``), or the event loop again as each packet comes (None)."""
        if polled is self._polled:
            return
        if self._sock is not None:
            self._unwatch()
            self._watch(polled)
        self._polled = polled

    def _watch(self, polled: SocketSet | None) -> None:
        assert self._sock is not None and self._loop is not None
        if polled is None:
            self._loop.add_reader(self._sock.fileno(), self._readable)
        else:
            polled.add(self._sock, self.datagram_received)

    def _unwatch(self) -> None:
        assert self._sock is not None and self._loop is not None
        if self._polled is None:
            self._loop.remove_reader(self._sock.fileno())
        else:
            self._polled.discard(self._sock.fileno())

    def close(self) -> None:
        if self._report_timer is not None:
            self._report_timer.cancel()
            self._report_timer = None
        if self._sock is not None:
            self._unwatch()
            self._sock = None
        if self._pair is not None:
            if self._pair.rtcp is not None and self._loop is not None:
                self._loop.remove_reader(self._pair.rtcp.fileno())
            self._pair.close()
            self._pair = None
        self._polled = None
        if self._registry is not None:
            self._registry.discard(self)

    @property
    def local_port(self) -> int:
        if self._pair is None:
            raise RuntimeError("the session is not started")
        return self._pair.port

    @property
    def rtcp_port(self) -> int:
        return self.local_port if self._mux else self.local_port + 1

    @property
    def telephone_event(self) -> int | None:
        """The payload type RFC 4733 events arrive under (None: not negotiated)."""
        return None if self._event_pt < 0 else self._event_pt

    @telephone_event.setter
    def telephone_event(self, payload_type: int | None) -> None:
        # -1, not None, on the hot path: an int compare with None is the slow one.
        self._event_pt = -1 if payload_type is None else payload_type

    @property
    def remote(self) -> Address | None:
        return self._remote

    @property
    def latched(self) -> bool:
        return self._latching and self._source is not None

    @property
    def remote_ssrc(self) -> int | None:
        return None if self._stats is None else self._stats.ssrc

    @property
    def stats(self) -> ReceptionStats | None:
        """The received stream's statistics (loss, jitter), None before its first packet."""
        return self._stats

    @property
    def counters(self) -> RtpCounters:
        c = self._counters
        c.late = 0 if self.jitter is None else self.jitter.late
        current = 0 if self._stats is None else max(0, self._stats.cumulative_lost)
        c.lost = self._lost_before + current
        return c

    def set_remote(
        self,
        remote: Address | None,
        *,
        latch: bool = True,
        expected_ip: str | None = None,
        rtcp_remote: Address | None = None,
    ) -> None:
        """Point the session at a (new) remote, e.g. from a re-INVITE's SDP; unlatches.

        Without ``latch`` only packets from exactly ``remote`` are accepted.
        """
        self._remote = remote
        self._latching = latch
        self._expected_ip = expected_ip
        self._source = None if latch else remote
        self._rtcp_remote = rtcp_remote

    # The hot path.

    def _readable(self) -> None:
        try:
            data, addr = self._sock.recvfrom(RECEIVE_SIZE)  # type: ignore[union-attr]
        except OSError:  # nothing queued after all (BlockingIOError), or an ICMP error
            return
        self.datagram_received(data, addr)

    def _rtcp_readable(self) -> None:
        try:
            data, addr = self._pair.rtcp.recvfrom(RECEIVE_SIZE)  # type: ignore[union-attr]
        except OSError:
            return
        self.rtcp_received(data, addr)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        size = len(data)
        counters = self._counters
        if size >= RECEIVE_SIZE:  # it filled the read: it may have been cut short
            counters.dropped_malformed += 1
            return
        if self._mux and is_rtcp(data):  # RFC 5761 demultiplexing
            self.rtcp_received(data, addr)
            return
        relay = self.relay
        if relay is not None:
            if size < HEADER_SIZE or data[0] & 0xC0 != 0x80:
                counters.dropped_malformed += 1
            elif addr != self._source and not self._latch(addr):
                counters.dropped_foreign += 1
            else:
                counters.packets_in += 1
                counters.bytes_in += size
                relay.send_raw(data)
                if data[1] & 0x7F == self._event_pt:
                    self._relayed_event(data)
            return
        if data[0] == 0x80 and size >= HEADER_SIZE:  # no padding, extension or CSRCs: inline
            _, second, sequence, timestamp, ssrc = _unpack_header(data)
            start, end = HEADER_SIZE, size
        else:
            fields = unpack_rtp(data)
            if fields is None:
                counters.dropped_malformed += 1
                return
            second, sequence, timestamp, ssrc, start, end = fields
        if addr != self._source and not self._latch(addr):
            counters.dropped_foreign += 1
            return
        counters.packets_in += 1
        counters.bytes_in += size
        stats = self._stats
        if stats is None or ssrc != stats.ssrc:
            stats = self._new_stream(ssrc, sequence)
        now = _now()
        extended = stats.record(sequence, timestamp, now)
        if extended is None:  # the first of two packets after a sequence jump
            return
        payload_type = second & 0x7F
        if payload_type == self.payload_type:
            if self.jitter is not None:
                self.jitter.put(extended, timestamp, data[start:end])
        elif payload_type == self._event_pt:
            self._event(ssrc, timestamp, data[start:end])
        if self.on_packet is not None:
            self.on_packet(header_of(second, sequence, timestamp, ssrc), data[start:end])

    def _event(self, ssrc: int, timestamp: int, payload: bytes) -> None:
        digit = self._presses.press(ssrc, timestamp, payload)
        if digit is not None and self.on_digit is not None:
            self.on_digit(digit)

    def _relayed_event(self, data: bytes) -> None:
        fields = unpack_rtp(data)
        if fields is not None:
            _, _, timestamp, ssrc, start, end = fields
            self._event(ssrc, timestamp, data[start:end])

    def _latch(self, addr: Address) -> bool:
        if not self._latching or self._source is not None:
            return False
        if self._expected_ip is not None and addr[0] != self._expected_ip:
            return False
        self._source = self._remote = addr
        if self.on_latched is not None:
            self.on_latched()
        return True

    def _new_stream(self, ssrc: int, sequence: int) -> ReceptionStats:
        """A new SSRC is a new stream: fresh statistics, and an emptied jitter buffer."""
        if self._stats is not None:
            self._lost_before += max(0, self._stats.cumulative_lost)
            self._counters.ssrc_changes += 1
            if self.jitter is not None:
                self.jitter.reset()
        self._stats = ReceptionStats(ssrc, sequence, self.clock_rate)
        return self._stats

    # Sending.

    @property
    def timestamp(self) -> int:
        """The RTP timestamp our stream's next packet carries."""
        return self._ts

    def send_payload(
        self,
        payload: bytes,
        timestamp_increment: int = 160,
        marker: bool = False,
        payload_type: int | None = None,
        timestamp: int | None = None,
    ) -> bool:
        """Send one payload from our own stream (SSRC, sequence, timestamp); False if there
        is nowhere to send yet or the socket refused it. The timestamp advances after the
        packet. ``timestamp`` is for packets that carry another than the stream's clock (RFC
        4733: every packet of an event carries the event's start); the clock advances all the
        same."""
        ts = self._ts
        pt = self.payload_type if payload_type is None else payload_type
        second = pt | 0x80 if marker else pt
        return self._send(
            second, ts if timestamp is None else timestamp, payload, timestamp_increment
        )

    def send_audio(self, payload: bytes, timestamp_increment: int) -> bool:
        """``send_payload`` of one frame of the stream's payload type, the per-tick case of a
        mixed leg; when there is nowhere to send, nothing is sent and the stream stands still."""
        if self._remote is None:
            return False
        return self._send(self.payload_type, self._ts, payload, timestamp_increment)

    def _send(self, second: int, timestamp: int, payload: bytes, increment: int) -> bool:
        ts = self._ts
        data = _pack_header(0x80, second, self._seq, timestamp & 0xFFFFFFFF, self.ssrc) + payload
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (ts + increment) & 0xFFFFFFFF
        self._sent_packets += 1
        self._sent_octets += len(payload)
        self._last_send = _now()
        self._last_send_ts = ts
        remote, sock = self._remote, self._sock
        if remote is None or sock is None:
            return False
        try:  # send_raw, inlined: once per leg and tick
            sock.sendto(data, remote)
        except OSError as exc:
            self._refused(exc)
            return False
        counters = self._counters
        counters.packets_out += 1
        counters.bytes_out += len(data)
        return True

    def send_raw(self, data: bytes) -> bool:
        """Send a datagram as it is (a relayed packet keeps the other leg's SSRC)."""
        remote, sock = self._remote, self._sock
        if remote is None or sock is None:
            return False
        try:
            sock.sendto(data, remote)
        except OSError as exc:
            self._refused(exc)
            return False
        counters = self._counters
        counters.packets_out += 1
        counters.bytes_out += len(data)
        return True

    def _refused(self, exc: OSError) -> None:
        """Count a packet the socket refused. A full buffer drops it (real-time audio is not
        queued behind); any other refusal (an unreachable or unusable remote) would refuse
        every packet, so the first is logged."""
        counters = self._counters
        if not isinstance(exc, BlockingIOError) and counters.send_errors == 0:
            log.warning("RTP of %s to %s refused: %s", self.call_id, self._remote, exc)
        counters.send_errors += 1

    # RTCP.

    def _rtcp_destination(self) -> Address | None:
        if self._rtcp_remote is not None:
            return self._rtcp_remote
        if self._remote is None or self._mux:
            return self._remote
        return self._remote[0], self._remote[1] + 1

    def rtcp_received(self, data: bytes, addr: Address) -> None:
        """Take the peer's reports: the SR for our LSR/DLSR, blocks about us for the RTT."""
        packets = parse_rtcp(data)
        if packets is None:
            self._counters.dropped_malformed += 1
            return
        source = self._source or self._remote
        if source is None or addr[0] != source[0]:
            self._counters.dropped_foreign += 1
            return
        self._rtcp_remote = addr  # symmetric RTCP, as for RTP
        now = _now()
        for packet in packets:
            if isinstance(packet, SenderReport):
                self.last_sender_report = packet
                if self._stats is not None and packet.ssrc == self._stats.ssrc:
                    self._stats.sender_report_received(packet.ntp, now)
            if isinstance(packet, SenderReport | ReceiverReport):
                for block in packet.reports:
                    if block.ssrc == self.ssrc and block.lsr:
                        delay = ntp_middle(ntp_timestamp()) - block.lsr - block.dlsr
                        self.rtt = (delay & 0xFFFFFFFF) / 65536
        if self.on_rtcp is not None:
            self.on_rtcp(packets)

    def _schedule_report(self, loop: asyncio.AbstractEventLoop) -> None:
        # RFC 3550 §6.3.1: randomised over [0.5, 1.5] x the interval, so peers do not sync up.
        delay = self._rtcp_interval * random.uniform(0.5, 1.5)
        self._report_timer = loop.call_later(delay, self._send_report, loop)

    def _send_report(self, loop: asyncio.AbstractEventLoop) -> None:
        self._schedule_report(loop)
        destination = self._rtcp_destination()
        pair = self._pair
        sock = None if pair is None else pair.rtp if self._mux else pair.rtcp
        if destination is None or sock is None or not self.reporting:
            return
        now = _now()
        blocks = () if self._stats is None else (self._stats.report_block(now),)
        if self._sent_packets > self._sent_at_report:
            self._sent_at_report = self._sent_packets
            elapsed = int((now - self._last_send) * self.clock_rate)
            report = SenderReport(
                self.ssrc,
                ntp_timestamp(),
                self._last_send_ts + elapsed,
                self._sent_packets,
                self._sent_octets,
                blocks,
            )
            packet = build_sr(report, self.cname)
        else:
            packet = build_rr(ReceiverReport(self.ssrc, blocks), self.cname)
        with contextlib.suppress(OSError):  # a report lost to a full buffer: the next one
            sock.sendto(packet, destination)
