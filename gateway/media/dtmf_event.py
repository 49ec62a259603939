"""RFC 4733 telephone-event payloads: DTMF sent as named events rather than as audio.

Only the payload format, the packet schedule of a key press and the telling of presses apart
on receipt live here; RTP framing and sockets do not.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from gateway.media.frame import FRAME_MS
from gateway.media.rtp import ts_diff

EVENT_CODES: dict[str, int] = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
DIGITS: dict[int, str] = {code: digit for digit, code in EVENT_CODES.items()}


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload (RFC 4733 section 2.3).

    ``volume`` is the power level in -dBm0, 0..63; ``duration`` is in RTP clock ticks since
    the event's start, which is the packet's RTP timestamp.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @property
    def digit(self) -> str | None:
        """The DTMF key for events 0-15, None for the other RFC 4733 events."""
        return DIGITS.get(self.event)


def pack_event(event: TelephoneEvent) -> bytes:
    if not 0 <= event.event <= 255 or not 0 <= event.volume <= 63:
        raise ValueError(f"event 0..255 and volume 0..63, not {event.event}/{event.volume}")
    if not 0 <= event.duration <= 0xFFFF:
        raise ValueError(f"duration {event.duration} does not fit in 16 bits")
    return struct.pack(
        "!BBH", event.event, (0x80 if event.end else 0) | event.volume, event.duration
    )


def parse_event(payload: bytes) -> TelephoneEvent:
    """The first (usually only) event in a payload; the reserved bit is ignored."""
    if len(payload) < 4:
        raise ValueError(f"a telephone-event payload is 4 bytes, got {len(payload)}")
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


class EventPacket(NamedTuple):
    """One packet of a digit. All packets of an event carry the event's start as their RTP
    timestamp (RFC 4733 section 2.5.1.2); ``send_offset`` is when, in clock ticks after that
    start, this one is due."""

    payload: bytes
    marker: bool
    send_offset: int


def digit_packets(
    digit: str,
    duration_ms: int = 100,
    *,
    clock_rate: int = 8000,
    volume: int = 10,
    packet_ms: int = FRAME_MS,
    end_repeats: int = 3,
) -> list[EventPacket]:
    """The packets that send one key press.

    One packet per ``packet_ms`` with the duration so far, the first marked as the start of
    the event, then the final duration with the end bit ``end_repeats`` times (the end is what
    a receiver acts on, so it is sent redundantly, one packet interval apart). ``clock_rate``
    is the telephone-event rtpmap rate, which must match the audio codec's RTP clock.
    """
    code = EVENT_CODES.get(digit.upper())
    if code is None:
        raise ValueError(f"{digit!r} is not a DTMF key (0-9 * # A-D)")
    step = clock_rate * packet_ms // 1000
    total = clock_rate * duration_ms // 1000
    if total <= 0:
        raise ValueError("a key press lasts at least one clock tick")
    packets = [
        EventPacket(
            pack_event(TelephoneEvent(code, False, volume, elapsed)), elapsed == step, elapsed
        )
        for elapsed in range(step, total, step)
    ]
    end = pack_event(TelephoneEvent(code, True, volume, total))
    packets += [
        EventPacket(end, not packets and i == 0, total + i * step) for i in range(end_repeats)
    ]
    return packets


class KeyPresses:
    """Tells the key presses in a stream of telephone-event packets, each once.

    An event is identified by its RTP timestamp (its start) within its SSRC: the first packet
    seen of a new event is a press, whichever it is (its start, an update, or an end packet
    when the others were lost); its updates, end packets and their retransmissions are not.
    A packet of an event older than the last one seen (reordered, or a late retransmitted
    end) is not a press either. Events other than the sixteen DTMF keys are ignored.
    """

    __slots__ = ("_ssrc", "_start")

    def __init__(self) -> None:
        self._ssrc: int | None = None
        self._start = 0

    def press(self, ssrc: int, timestamp: int, payload: bytes) -> str | None:
        """The digit when this packet is the first seen of a new key press, else None."""
        if len(payload) < 4:
            return None
        if ssrc == self._ssrc and ts_diff(timestamp, self._start) <= 0:
            return None
        self._ssrc, self._start = ssrc, timestamp
        return DIGITS.get(payload[0])
