"""RTP packets (RFC 3550 §5.1) and the modular arithmetic of their sequence numbers and timestamps.

Parsing is on the per-packet path: one ``struct.unpack_from`` and a few integer checks, no
objects beyond the header tuple and the payload slice. Malformed packets give ``None`` so the
caller counts and drops them instead of paying for an exception.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

RTP_VERSION = 2
HEADER_SIZE = 12
SEQ_MOD = 1 << 16
# RFC 3550 A.1: a jump of more than MAX_DROPOUT ahead or MAX_MISORDER behind is a new stream.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2

# The fixed 12-octet header: first octet, second octet (marker, payload type), sequence,
# timestamp, SSRC.
FIXED_HEADER = struct.Struct("!BBHII")
_new_tuple = tuple.__new__


class RtpHeader(NamedTuple):
    """The fields of a header a receiver acts on; CSRCs, extension and padding are skipped."""

    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int


def unpack_rtp(data: bytes) -> tuple[int, int, int, int, int, int] | None:
    """The hot path's parse, with no header object: (second octet, i.e. marker << 7 |
    payload type; sequence; timestamp; SSRC; payload start; payload end), or None when the
    datagram is not a well-formed RTP packet."""
    size = len(data)
    if size < HEADER_SIZE:
        return None
    first, second, sequence, timestamp, ssrc = FIXED_HEADER.unpack_from(data)
    if first == 0x80:  # the common case: no padding, extension or CSRCs
        return second, sequence, timestamp, ssrc, HEADER_SIZE, size
    if first >> 6 != RTP_VERSION:
        return None
    start = HEADER_SIZE + (first & 0x0F) * 4
    if first & 0x10:  # a header extension: 16-bit profile, 16-bit length in 32-bit words
        if start + 4 > size:
            return None
        start += 4 + int.from_bytes(data[start + 2 : start + 4], "big") * 4
    end = size
    if first & 0x20:  # padding: the last octet counts the padding octets, itself included
        padding = data[-1]
        if padding == 0:
            return None
        end -= padding
    if start > end:
        return None
    return second, sequence, timestamp, ssrc, start, end


def header_of(second: int, sequence: int, timestamp: int, ssrc: int) -> RtpHeader:
    # tuple.__new__ skips the generated __new__: one Python frame less per packet.
    return _new_tuple(RtpHeader, (second > 0x7F, second & 0x7F, sequence, timestamp, ssrc))


def parse_rtp(data: bytes) -> tuple[RtpHeader, bytes] | None:
    """The header and payload of one datagram, or None when it is not a well-formed RTP packet."""
    fields = unpack_rtp(data)
    if fields is None:
        return None
    second, sequence, timestamp, ssrc, start, end = fields
    return header_of(second, sequence, timestamp, ssrc), data[start:end]


def build_rtp(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
) -> bytes:
    """A packet with no CSRCs, extension or padding; sequence and timestamp are taken modulo."""
    second = payload_type | 0x80 if marker else payload_type
    return (
        FIXED_HEADER.pack(0x80, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload
    )


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: on a muxed port, second octets 192..223 are RTCP packet types, not RTP."""
    return len(data) > 1 and 192 <= data[1] <= 223


def seq_newer(a: int, b: int) -> bool:
    """Whether 16-bit sequence number ``a`` comes after ``b``, across the 65535 -> 0 wrap."""
    return a != b and (a - b) & 0xFFFF < 0x8000


def ts_diff(a: int, b: int) -> int:
    """``a - b`` for 32-bit RTP timestamps, as the signed difference nearest to zero."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


class SequenceTracker:
    """RFC 3550 A.1: extended sequence numbers (cycles counted) and the source's validity.

    ``update`` returns the packet's extended sequence number, or None while the source is on
    probation or after a jump too large to be the same stream (two such packets in a row
    restart the count: the sender reset its sequence without changing SSRC).
    """

    __slots__ = ("bad_seq", "base_seq", "cycles", "max_seq", "probation", "received")

    def __init__(self, sequence: int, min_sequential: int = MIN_SEQUENTIAL) -> None:
        self._init(sequence)
        self.max_seq = (sequence - 1) & 0xFFFF
        self.probation = min_sequential

    def _init(self, sequence: int) -> None:
        self.base_seq = sequence
        self.max_seq = sequence
        self.bad_seq = SEQ_MOD + 1  # so that seq == bad_seq is false
        self.cycles = 0
        self.received = 0

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    def update(self, sequence: int) -> int | None:
        max_seq = self.max_seq
        delta = (sequence - max_seq) & 0xFFFF
        if self.probation:
            if sequence == (max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = sequence
                if self.probation == 0:
                    self._init(sequence)
                    self.received = 1
                    return sequence
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = sequence
            return None
        if delta < MAX_DROPOUT:  # in order, with a permissible gap
            if sequence < max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = sequence
        elif delta <= SEQ_MOD - MAX_MISORDER:  # a very large jump
            if sequence != self.bad_seq:
                self.bad_seq = (sequence + 1) & 0xFFFF
                return None
            self._init(sequence)
        elif sequence > max_seq:  # duplicate or reordered from before the last wrap
            self.received += 1
            return self.cycles - SEQ_MOD + sequence
        self.received += 1
        return self.cycles + sequence
