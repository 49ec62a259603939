"""RFC 4733 telephone-event for aiortc, which has none: negotiated, and received as key presses.

aiortc (checked: 1.16) neither offers nor accepts ``telephone-event``, and drops RTP of a
payload type it has no decoder for. :func:`install` patches these internals, once,
process-wide:

- ``aiortc.codecs.CODECS["audio"]`` gains ``telephone-event/48000`` (to pair with Opus, whose
  RTP clock is 48 kHz) and ``telephone-event/8000`` (G.711), so offers list them and answers
  keep them when the far end offers them (Chromium offers both);
- ``aiortc.rtcpeerconnection.find_common_codecs`` puts telephone-event after the voice codecs
  and keeps none without one: aiortc's sender sends with the first common codec, and could
  not encode events; ``filter_preferred_codecs`` (``setCodecPreferences``) matches
  preferences by MIME type and parameters only, so telephone-event is kept by clock rate;
- ``RTCRtpReceiver.receive`` notes the payload types telephone-event was negotiated under, and
  ``RTCRtpReceiver._handle_rtp_packet`` takes packets of those types before aiortc looks for a
  decoder: each key press goes once to the receiver's listener (:func:`listen`), told apart
  by :class:`gateway.media.dtmf_event.KeyPresses` as on the SIP side (without a listener
  they are dropped: aiortc's decoder thread would die on them). A sender sends events in
  place of its audio (libwebrtc does), so the receiver's track is given silence (into its
  ``RemoteStreamTrack._queue``, in its decoder's format) for the duration each packet adds:
  the key is a pause in what the leg hears, and a long press is not a stream gone quiet
  (the WebRTC leg's media timeout).

Those packets are not counted in aiortc's receive statistics, and the sequence numbers they
take leave a gap that aiortc's audio jitter buffer waits out (up to 16 packets, about 0.3 s)
before it plays on. Sending events is not patched in: browsers expose no received events, so the
gateway plays keys to them in-band.

Another aiortc version fails :func:`install` (an ImportError at import of
``trunks.webrtc.peer``) until these hooks are checked against it and it is added to
``TESTED_VERSIONS``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import aiortc
import aiortc.codecs
import aiortc.rtcpeerconnection
import numpy as np
from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import RtpPacket
from av import AudioFrame

from gateway.media.dtmf_event import KeyPresses, parse_event
from gateway.media.rtp import ts_diff

TESTED_VERSIONS = ("1.16.",)
MIME_TYPE = "audio/telephone-event"
# Chromium's payload types for them; dynamic, and clear of aiortc's video ones (97-102).
TELEPHONE_EVENTS = (
    RTCRtpCodecParameters(mimeType=MIME_TYPE, clockRate=48000, channels=1, payloadType=110),
    RTCRtpCodecParameters(mimeType=MIME_TYPE, clockRate=8000, channels=1, payloadType=126),
)

OnDigit = Callable[[str], None]


class _Events:
    """One receiver's events: the payload types to take (with their clock rates), the dedupe,
    who is told (nobody: the events are dropped all the same, as aiortc has no decoder for
    them), and how much of the current event's duration was played as silence."""

    __slots__ = ("_duration", "_event", "decoded", "on_digit", "payload_types", "presses")

    def __init__(self) -> None:
        self.on_digit: OnDigit | None = None
        self.payload_types: dict[int, int] = {}  # payload type: clock rate
        self.decoded: tuple[int, str] | None = None  # what the voice codec decodes to
        self.presses = KeyPresses()
        self._event: tuple[int, int] | None = None  # (SSRC, timestamp) of the latest
        self._duration = 0

    def new_ticks(self, ssrc: int, timestamp: int, payload: bytes) -> int:
        """Clock ticks of the event's duration this packet adds to what was already covered
        (its audio was replaced by the event); 0 for retransmissions and older events."""
        if len(payload) < 4:
            return 0
        duration = parse_event(payload).duration
        if self._event != (ssrc, timestamp):
            latest = self._event
            if latest is not None and ssrc == latest[0] and ts_diff(timestamp, latest[1]) < 0:
                return 0  # a late packet of an event before the latest
            self._event, self._duration = (ssrc, timestamp), 0
        added = max(0, duration - self._duration)
        self._duration += added
        return added


_receivers: weakref.WeakKeyDictionary[RTCRtpReceiver, _Events] = weakref.WeakKeyDictionary()
_installed = False


def is_telephone_event(codec: Any) -> bool:
    return str(codec.mimeType).lower() == MIME_TYPE


def listen(pc: RTCPeerConnection, on_digit: OnDigit) -> None:
    """Tell ``on_digit`` each key press the far end of ``pc`` sends as RFC 4733 events."""

    @pc.on("track")
    def on_track(track: Any) -> None:  # the receivers exist, they receive nothing yet
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                _receivers.setdefault(transceiver.receiver, _Events()).on_digit = on_digit


def install() -> None:
    """Patch aiortc (once; later calls do nothing). Raises ImportError on an untested
    aiortc, or one whose hooks are not where this module expects them."""
    global _installed
    if _installed:
        return
    version = aiortc.__version__
    if not version.startswith(TESTED_VERSIONS):
        raise ImportError(
            f"trunks.webrtc.telephone_event patches aiortc {TESTED_VERSIONS} internals, "
            f"not {version}: check its hooks against this version, then add it"
        )
    _check_hooks()
    audio = aiortc.codecs.CODECS["audio"]
    audio.extend(c for c in TELEPHONE_EVENTS if c not in audio)
    pcs = aiortc.rtcpeerconnection
    pcs.find_common_codecs = _voice_first(pcs.find_common_codecs)
    pcs.filter_preferred_codecs = _events_by_clock_rate(pcs.filter_preferred_codecs)
    RTCRtpReceiver.receive = _noting_payload_types(RTCRtpReceiver.receive)  # type: ignore[method-assign]
    RTCRtpReceiver._handle_rtp_packet = _taking_events(RTCRtpReceiver._handle_rtp_packet)  # type: ignore[method-assign]
    _installed = True


# What aiortc's decoders hand on: (sample rate, layout), all s16. The silence for an event
# must match it, as a resampler downstream takes one format only.
DECODED = {
    "audio/opus": (48000, "stereo"),
    "audio/pcmu": (8000, "mono"),
    "audio/pcma": (8000, "mono"),
    "audio/g722": (16000, "mono"),
}


def _silence(ticks: int, clock_rate: int, decoded: tuple[int, str]) -> AudioFrame:
    """``ticks`` (at the event's ``clock_rate``) of silence, as the voice decoder makes it."""
    rate, layout = decoded
    channels = 2 if layout == "stereo" else 1
    samples = np.zeros((1, ticks * rate // clock_rate * channels), dtype=np.int16)
    frame = AudioFrame.from_ndarray(samples, format="s16", layout=layout)
    frame.sample_rate = rate
    return frame


def _check_hooks() -> None:
    expected = {
        RTCRtpReceiver.receive: ["self", "parameters"],
        RTCRtpReceiver._handle_rtp_packet: ["self", "packet", "arrival_time_ms"],
        aiortc.rtcpeerconnection.find_common_codecs: ["local_codecs", "remote_codecs"],
        aiortc.rtcpeerconnection.filter_preferred_codecs: ["codecs", "preferred"],
    }
    for function, parameters in expected.items():
        if list(inspect.signature(function).parameters) != parameters:
            raise ImportError(f"aiortc's {function.__qualname__} is not {parameters}")
    if not isinstance(aiortc.codecs.CODECS.get("audio"), list):
        raise ImportError("aiortc.codecs.CODECS['audio'] is not a list of codecs")
    if not isinstance(getattr(RemoteStreamTrack("audio"), "_queue", None), asyncio.Queue):
        raise ImportError("aiortc's RemoteStreamTrack has no _queue of decoded frames")


def _voice_first(
    find: Callable[[list[RTCRtpCodecParameters], list[RTCRtpCodecParameters]], list[Any]],
) -> Callable[[list[RTCRtpCodecParameters], list[RTCRtpCodecParameters]], list[Any]]:
    @functools.wraps(find)
    def find_common_codecs(
        local_codecs: list[RTCRtpCodecParameters], remote_codecs: list[RTCRtpCodecParameters]
    ) -> list[Any]:
        common = find(local_codecs, remote_codecs)
        voice = [c for c in common if not is_telephone_event(c)]
        return voice + [c for c in common if is_telephone_event(c)] if voice else voice

    return find_common_codecs


def _events_by_clock_rate(
    filter_preferred: Callable[[list[RTCRtpCodecParameters], list[Any]], list[Any]],
) -> Callable[[list[RTCRtpCodecParameters], list[Any]], list[Any]]:
    @functools.wraps(filter_preferred)
    def filter_preferred_codecs(
        codecs: list[RTCRtpCodecParameters], preferred: list[Any]
    ) -> list[Any]:
        filtered = filter_preferred(codecs, preferred)
        if not preferred:
            return filtered
        rates = [p.clockRate for p in preferred if is_telephone_event(p)]
        events = [c for r in rates for c in codecs if is_telephone_event(c) and c.clockRate == r]
        return [c for c in filtered if not is_telephone_event(c)] + events

    return filter_preferred_codecs


def _noting_payload_types(
    receive: Callable[[RTCRtpReceiver, RTCRtpReceiveParameters], Coroutine[Any, Any, None]],
) -> Callable[[RTCRtpReceiver, RTCRtpReceiveParameters], Coroutine[Any, Any, None]]:
    @functools.wraps(receive)
    async def receive_noting(self: RTCRtpReceiver, parameters: RTCRtpReceiveParameters) -> None:
        events = _receivers.setdefault(self, _Events())
        events.payload_types = {
            c.payloadType: c.clockRate for c in parameters.codecs if is_telephone_event(c)
        }
        voice = next((c for c in parameters.codecs if not is_telephone_event(c)), None)
        events.decoded = None if voice is None else DECODED.get(voice.mimeType.lower())
        await receive(self, parameters)

    return receive_noting


def _taking_events(
    handle: Callable[[RTCRtpReceiver, RtpPacket, int], Coroutine[Any, Any, None]],
) -> Callable[[RTCRtpReceiver, RtpPacket, int], Coroutine[Any, Any, None]]:
    @functools.wraps(handle)
    async def handle_rtp_packet(
        self: RTCRtpReceiver, packet: RtpPacket, arrival_time_ms: int
    ) -> None:
        events = _receivers.get(self)
        if events is None or packet.payload_type not in events.payload_types:
            await handle(self, packet, arrival_time_ms)
            return
        if not self._enabled:
            return
        ticks = events.new_ticks(packet.ssrc, packet.timestamp, packet.payload)
        if ticks and events.decoded is not None and self.track is not None:
            clock_rate = events.payload_types[packet.payload_type]
            self.track._queue.put_nowait(_silence(ticks, clock_rate, events.decoded))
        digit = events.presses.press(packet.ssrc, packet.timestamp, packet.payload)
        if digit is not None and events.on_digit is not None:
            events.on_digit(digit)

    return handle_rtp_packet
