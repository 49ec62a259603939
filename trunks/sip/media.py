"""RTP media of SIP legs: one RTP session per leg, bound when its SDP is made, pointed at the
far end once offer/answer agrees, closed when the leg ends; the media port that turns the
session's packets into the media plane's 20 ms frames and back; and an endpoint's own media
(:class:`~gateway.media.port.NativeMedia`) read from, and written into, SDP for bypass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from gateway.media.codecs import Codec, codec_for
from gateway.media.dtmf_event import EventPacket, digit_packets
from gateway.media.frame import FRAME_MS, NARROWBAND
from gateway.media.jitterbuffer import Concealer, JitterBuffer
from gateway.media.metrics import SessionRegistry
from gateway.media.port import NativeMedia, RelayablePort
from gateway.media.ports import PortAllocator
from gateway.media.resample import Resampler
from gateway.media.session import RtpSession
from trunks.sip.sdp import TELEPHONE_EVENT, NegotiatedMedia
from trunks.sip.sdp import Codec as SdpCodec

if TYPE_CHECKING:
    from gateway.media.socketset import SocketSet


def native_media(negotiated: NegotiatedMedia) -> NativeMedia:
    """The endpoint's own media from what offer/answer agreed: where it receives, the codec
    and telephone-event under its payload types, its ptime and its own direction."""
    codec = negotiated.codec
    channels = f"/{codec.channels}" if codec.channels != 1 else ""
    address, port = negotiated.remote_rtp
    return NativeMedia(
        address,
        port,
        f"{codec.name}/{codec.clock_rate}{channels}",
        codec.payload_type,
        negotiated.telephone_event,
        negotiated.ptime,
        negotiated.remote_direction,
    )


def sdp_codecs(native: NativeMedia) -> list[SdpCodec]:
    """What an SDP must list for an endpoint to send to ``native`` unchanged: its codec under
    its payload type, and telephone-event under its own (at the codec's clock, RFC 4733)."""
    name, rate, *channels = native.codec.split("/")
    voice = SdpCodec(native.payload_type, name, int(rate), int(channels[0]) if channels else 1)
    if native.telephone_event is None:
        return [voice]
    event = replace(TELEPHONE_EVENT, payload_type=native.telephone_event, clock_rate=int(rate))
    return [voice, event]


class RtpMediaPort:
    """The :class:`~gateway.media.port.MediaPort` of one SIP leg (8 kHz frames in and out).

    A G.711 leg is also a :class:`~gateway.media.port.PayloadPort`: the plane takes its
    payloads straight from the jitter buffer and hands it encoded ones, decoding and encoding
    all such legs of a tick at once; ``read``/``write`` serve the other codecs.

    Digits queued by ``send_digit`` go out as RFC 4733 events on the ticks (``push`` or
    ``write``): one event packet instead of each audio frame until the digit's three end
    packets are out, in the audio's SSRC, sequence and timestamp space."""

    sample_rate = NARROWBAND

    def __init__(self, session: RtpSession) -> None:
        self.session = session
        self.jitter = JitterBuffer()
        # The session puts audio straight in (no callback, header object or clock read per
        # packet), keyed by the extended sequence number so a wrap is no resync.
        session.jitter = self.jitter
        # PayloadPort.pull is the buffer's own get: no frame of ours per leg and tick.
        self.pull: Callable[[], bytes | None] = self.jitter.get
        self.concealer = Concealer()
        self.batch_codec: Codec | None = None
        self._codec: Codec | None = None
        self._step = 0
        self._audio_pt: int | None = None
        self._encoder = None
        self._decoder = None
        self._up: Resampler | None = None
        self._down: Resampler | None = None
        self.telephone_event: int | None = None
        self._sending = True
        self._events: deque[EventPacket] = deque()  # of the digits queued, in order
        self._event_start = 0  # the RTP timestamp of the event being sent

    def use(self, negotiated: NegotiatedMedia, expected_ip: str | None = None) -> None:
        """Offer/answer agreed: this codec, to this address (symmetric RTP may correct it)."""
        offered = negotiated.codec
        codec = codec_for(
            offered.name, offered.clock_rate, offered.channels, payload_type=offered.payload_type
        )
        if self._codec is None or codec.name != self._codec.name:
            self._codec = codec
            self._encoder, self._decoder = codec.new_encoder(), codec.new_decoder()
            rate = codec.sample_rate
            self._up = Resampler(NARROWBAND, rate) if rate != NARROWBAND else None
            self._down = Resampler(rate, NARROWBAND) if rate != NARROWBAND else None
            self._step = codec.timestamp_step
            self.batch_codec = codec if codec.batchable and rate == NARROWBAND else None
        self._audio_pt = offered.payload_type
        self._sending = negotiated.direction in ("sendrecv", "sendonly")  # not while held
        self.telephone_event = negotiated.telephone_event
        self.session.payload_type = offered.payload_type
        self.session.telephone_event = negotiated.telephone_event
        self.session.set_remote(negotiated.remote_rtp, expected_ip=expected_ip)

    def can_relay_with(self, other: object) -> bool:
        """Both legs agreed on the same audio and telephone-event payload types, so packets
        can be forwarded without decoding: the cheapest path that keeps the gateway in the
        media path. False when the legs differ (they must be mixed instead)."""
        if not isinstance(other, RtpMediaPort) or self._codec is None or other._codec is None:
            return False
        mine = (self._codec.name, self._audio_pt, self.telephone_event)
        return mine == (other._codec.name, other._audio_pt, other.telephone_event)

    def relay_with(self, other: RelayablePort) -> None:
        assert isinstance(other, RtpMediaPort)
        self.session.relay, other.session.relay = other.session, self.session
        for port in (self, other):  # what was buffered before must not play after the relay
            port.jitter.reset()

    def stop_relay(self) -> None:
        self.session.relay = None

    def read_on(self, sockets: SocketSet | None) -> None:
        self.session.read_on(sockets)

    def send_digit(self, digit: str, duration_ms: int) -> bool:
        """Queue one key press (``0-9*#A-D``) to send as RFC 4733 events, after those queued
        before; False when the endpoint agreed on no telephone-event. Durations are counted
        on the audio's RTP clock (which offer/answer prefers telephone-event to share).
        Raises ValueError for another key, or a duration the event's 16 bits cannot hold."""
        if self.telephone_event is None or self._codec is None:
            return False
        clock = self._step * 1000 // FRAME_MS
        self._events.extend(digit_packets(digit, duration_ms, clock_rate=clock))
        return True

    def push(self, payload: bytes) -> None:
        if self._events:
            self._send_event()
        elif self._sending:
            self.session.send_audio(payload, self._step)

    def _send_event(self) -> None:
        """This tick's event packet, in place of its audio: the marked first one fixes the
        event's timestamp at the stream's clock, which goes on advancing under it."""
        packet, session = self._events.popleft(), self.session
        if packet.marker:
            self._event_start = session.timestamp
        if self._sending and session.remote is not None:
            session.send_payload(
                packet.payload,
                self._step,
                packet.marker,
                self.telephone_event,
                timestamp=self._event_start,
            )

    def read(self) -> np.ndarray | None:
        if self._decoder is None:
            return None
        payload = self.pull()
        if payload is not None:
            samples = self._decoder.decode(payload)
            if self._down is not None:
                samples = self._down.process(samples)
            if len(samples) == 160:
                samples = samples.astype(np.int16, copy=False)
                self.concealer.heard(samples)
                return samples
        return self.concealer.missing()

    def write(self, samples: np.ndarray) -> None:
        if self._events:
            self._send_event()
            return
        if self._encoder is None or not self._sending or self.session.remote is None:
            return
        if self._up is not None:
            samples = self._up.process(samples)
        self.push(self._encoder.encode(samples))


class SipMedia:
    """The RTP sessions of live SIP legs, by leg id."""

    def __init__(self, allocator: PortAllocator, address: str, registry: SessionRegistry) -> None:
        self.allocator = allocator
        self.address = address
        self.registry = registry
        # Told (with the leg id) when a leg's session learns where its packets come from.
        self.on_latched: Callable[[str], None] | None = None
        # Told (leg id, digit) of each key press a leg's endpoint sends as RFC 4733 events.
        self.on_digit: Callable[[str, str], None] | None = None
        self._ports: dict[str, RtpMediaPort] = {}

    async def open(self, leg_id: str) -> RtpMediaPort:
        """The leg's port, binding a session on first use."""
        port = self._ports.get(leg_id)
        if port is None:
            session = RtpSession(
                self.allocator, self.address, call_id=leg_id, registry=self.registry
            )
            port = RtpMediaPort(session)
            if self.on_latched is not None:
                on_latched = self.on_latched
                session.on_latched = lambda: on_latched(leg_id)
            if self.on_digit is not None:
                on_digit = self.on_digit
                session.on_digit = lambda digit: on_digit(leg_id, digit)
            self._ports[leg_id] = port
            await session.start()
        return port

    def get(self, leg_id: str) -> RtpMediaPort | None:
        return self._ports.get(leg_id)

    def close(self, leg_id: str) -> None:
        port = self._ports.pop(leg_id, None)
        if port is not None:
            port.session.close()

    def close_all(self) -> None:
        for leg_id in list(self._ports):
            self.close(leg_id)
