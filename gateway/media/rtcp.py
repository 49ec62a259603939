"""RTCP sender and receiver reports with a CNAME (RFC 3550 §6.4, §6.5), and the receiver
statistics that fill their report blocks (A.3 loss, A.8 interarrival jitter, LSR/DLSR).

Reports go out every few seconds, so building and parsing them is not on the hot path; only
``ReceptionStats.record`` runs per packet.
"""

from __future__ import annotations

import struct
import time
from typing import NamedTuple

from gateway.media.rtp import SequenceTracker

SR = 200
RR = 201
SDES = 202
CNAME = 1
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01

_HEADER = struct.Struct("!BBHI")  # V/P/count, packet type, length in words - 1, SSRC
_SENDER_INFO = struct.Struct("!QIII")
_BLOCK = struct.Struct("!IIIIII")


class ReportBlock(NamedTuple):
    """What a receiver says about one source it hears."""

    ssrc: int
    fraction_lost: int  # lost since the last report, in 1/256
    cumulative_lost: int  # signed: duplicates can make it negative
    highest_seq: int  # extended
    jitter: int  # in timestamp units
    lsr: int  # middle 32 bits of the NTP time of the last SR heard, 0 if none
    dlsr: int  # delay since that SR, in 1/65536 s


class SenderReport(NamedTuple):
    ssrc: int
    ntp: int  # 64-bit NTP timestamp
    rtp_timestamp: int
    packet_count: int
    octet_count: int  # payload octets
    reports: tuple[ReportBlock, ...] = ()


class ReceiverReport(NamedTuple):
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


class SourceDescription(NamedTuple):
    ssrc: int
    cname: str


RtcpPacket = SenderReport | ReceiverReport | SourceDescription


def ntp_timestamp(unix_time: float | None = None) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point since 1900) of a Unix time, default now."""
    now = time.time() if unix_time is None else unix_time
    return int((now + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field, and the unit of round trips."""
    return (ntp >> 16) & 0xFFFFFFFF


def _pack_block(block: ReportBlock) -> bytes:
    lost = block.cumulative_lost
    lost = max(-0x800000, min(0x7FFFFF, lost)) & 0xFFFFFF  # 24-bit two's complement
    return _BLOCK.pack(
        block.ssrc,
        (block.fraction_lost & 0xFF) << 24 | lost,
        block.highest_seq & 0xFFFFFFFF,
        block.jitter & 0xFFFFFFFF,
        block.lsr,
        block.dlsr,
    )


def _unpack_block(data: bytes, offset: int) -> ReportBlock:
    ssrc, loss, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
    lost = loss & 0xFFFFFF
    if lost & 0x800000:
        lost -= 0x1000000
    return ReportBlock(ssrc, loss >> 24, lost, highest, jitter, lsr, dlsr)


def _packet(packet_type: int, count: int, ssrc: int, body: bytes) -> bytes:
    words = (4 + len(body)) // 4  # SSRC + body, in 32-bit words; the length field is that
    return _HEADER.pack(0x80 | count, packet_type, words, ssrc) + body


def _sdes(ssrc: int, cname: str) -> bytes:
    text = cname.encode()[:255]
    item = bytes((CNAME, len(text))) + text
    item += b"\0" * (4 - len(item) % 4)  # the chunk ends with at least one null octet
    return _packet(SDES, 1, ssrc, item)


def build_sr(report: SenderReport, cname: str) -> bytes:
    """A compound SR + SDES(CNAME) packet."""
    body = _SENDER_INFO.pack(
        report.ntp,
        report.rtp_timestamp & 0xFFFFFFFF,
        report.packet_count & 0xFFFFFFFF,
        report.octet_count & 0xFFFFFFFF,
    )
    body += b"".join(_pack_block(b) for b in report.reports)
    return _packet(SR, len(report.reports), report.ssrc, body) + _sdes(report.ssrc, cname)


def build_rr(report: ReceiverReport, cname: str) -> bytes:
    """A compound RR + SDES(CNAME) packet."""
    body = b"".join(_pack_block(b) for b in report.reports)
    return _packet(RR, len(report.reports), report.ssrc, body) + _sdes(report.ssrc, cname)


def parse_rtcp(data: bytes) -> list[RtcpPacket] | None:
    """The SR, RR and SDES CNAME packets of a compound packet (others skipped), or None when
    any packet's header or length is malformed."""
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            return None
        first, packet_type, words, ssrc = _HEADER.unpack_from(data, offset)
        end = offset + (words + 1) * 4
        if first >> 6 != 2 or end > len(data):
            return None
        count = first & 0x1F
        body = offset + 8
        if packet_type == SR:
            if body + 20 + count * 24 > end:
                return None
            ntp, rtp_ts, packet_count, octets = _SENDER_INFO.unpack_from(data, body)
            blocks = tuple(_unpack_block(data, body + 20 + i * 24) for i in range(count))
            packets.append(SenderReport(ssrc, ntp, rtp_ts, packet_count, octets, blocks))
        elif packet_type == RR:
            if body + count * 24 > end:
                return None
            blocks = tuple(_unpack_block(data, body + i * 24) for i in range(count))
            packets.append(ReceiverReport(ssrc, blocks))
        elif packet_type == SDES and count:
            cname = _first_cname(data, body, end)
            if cname is not None:
                packets.append(SourceDescription(ssrc, cname))
        offset = end
    return packets


def _first_cname(data: bytes, offset: int, end: int) -> str | None:
    """The CNAME item of the first SDES chunk (whose SSRC the header already held)."""
    while offset + 2 <= end and data[offset] != 0:
        kind, length = data[offset], data[offset + 1]
        if offset + 2 + length > end:
            return None
        if kind == CNAME:
            return data[offset + 2 : offset + 2 + length].decode(errors="replace")
        offset += 2 + length
    return None


class ReceptionStats(SequenceTracker):
    """Everything a report block says about one received source, updated per packet.

    Arrival times are in seconds on any monotonic clock; ``clock_rate`` turns them into
    timestamp units for the A.8 jitter, which is kept as a float and reported rounded.
    """

    __slots__ = (
        "clock_rate",
        "expected_prior",
        "jitter",
        "last_sr",
        "last_sr_arrival",
        "last_transit",
        "received_prior",
        "ssrc",
    )

    def __init__(self, ssrc: int, sequence: int, clock_rate: int, min_sequential: int = 1) -> None:
        super().__init__(sequence, min_sequential)
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.jitter = 0.0
        self.last_transit: float | None = None
        self.expected_prior = 0
        self.received_prior = 0
        self.last_sr = 0
        self.last_sr_arrival = 0.0

    def record(self, sequence: int, timestamp: int, arrival: float) -> int | None:
        """Count one packet; its extended sequence number, or None if not (yet) valid."""
        if sequence == self.max_seq + 1 and not self.probation:  # the common case, inlined
            self.max_seq = sequence
            self.received += 1
            extended = self.cycles + sequence
        else:
            extended = self.update(sequence)
            if extended is None:
                return None
        # A.8: transit differences are taken modulo 2^32 so a timestamp wrap is no spike.
        transit = arrival * self.clock_rate - timestamp
        last = self.last_transit
        self.last_transit = transit
        if last is not None:
            d = transit - last
            if d >= 0x80000000:  # a timestamp wrap between the two packets
                d -= 0x100000000
            elif d < -0x80000000:
                d += 0x100000000
            if d < 0:
                d = -d
            self.jitter += (d - self.jitter) / 16
        return extended

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.received else 0

    @property
    def cumulative_lost(self) -> int:
        return self.expected - self.received

    def sender_report_received(self, ntp: int, arrival: float) -> None:
        self.last_sr = ntp_middle(ntp)
        self.last_sr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock:
        """The block for the next report; resets the interval used for the fraction lost."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = (
            (lost_interval << 8) // expected_interval
            if expected_interval and lost_interval > 0
            else 0
        )
        dlsr = int((now - self.last_sr_arrival) * 65536) if self.last_sr else 0
        return ReportBlock(
            self.ssrc,
            min(fraction, 255),
            self.cumulative_lost,
            self.extended_max,
            round(self.jitter),
            self.last_sr,
            dlsr & 0xFFFFFFFF,
        )
