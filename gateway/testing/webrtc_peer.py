"""An aiortc WebRTC peer for tests: a browser stand-in that speaks the gateway's signalling.

It connects to ``/webrtc/1/signalling`` with a token, answers ``incoming`` calls or places
its own, sends a tone (or silence) and records what it hears at 8 kHz, so a test can check
the frequency that came through. Keys go as ``dtmf`` messages (:meth:`WebRtcTestPeer.dtmf`)
or as RFC 4733 events in its RTP stream (:meth:`WebRtcTestPeer.press_keys`), as a browser's
``insertDTMF`` sends them.

    async with WebRtcTestPeer(ws_url, token, tone_hz=440) as peer:
        incoming = await peer.expect("incoming")
        await peer.answer(incoming)
        await peer.wait_heard(1.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import websockets
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import is_rtcp
from aiortc.sdp import SessionDescription
from av import AudioResampler

from gateway.media.dtmf_event import EventPacket, digit_packets
from gateway.media.rtp import unpack_rtp
from trunks.webrtc.media import PacedTrack
from trunks.webrtc.peer import IceSettings, new_peer_connection
from trunks.webrtc.telephone_event import is_telephone_event

RATE = 8000
SAMPLES = RATE // 50


class ToneTrack(PacedTrack):
    """A sine (or silence when ``frequency`` is None) in 20 ms frames at real-time pace."""

    def __init__(self, frequency: float | None, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self._amplitude = amplitude

    def next_samples(self, index: int) -> np.ndarray:
        if self.frequency is None:
            return np.zeros(SAMPLES, dtype=np.int16)
        n = np.arange(index * SAMPLES, (index + 1) * SAMPLES)
        wave = self._amplitude * np.sin(2 * np.pi * self.frequency * n / RATE)
        return (wave * 32767).astype(np.int16)


class EventInjector:
    """Sends key presses as RFC 4733 events in an aiortc sender's own RTP stream.

    aiortc cannot send events, so the packets its sender sends (after the sender, before
    SRTP) are rewritten: while a key is sent, each audio packet goes out as the key's next
    event packet instead, keeping its SSRC, sequence number and header extensions, with the
    event's payload type, marker, payload and timestamp (the key's first packet's, its start).
    That is how libwebrtc sends ``insertDTMF``: events in place of audio, one per 20 ms.
    """

    def __init__(self, sender: RTCRtpSender, payload_type: int) -> None:
        self._transport = sender.transport
        self._payload_type = payload_type
        self._pending: deque[tuple[EventPacket | None, bool]] = deque()
        self._start = 0
        self._sent = asyncio.Event()

    async def send(self, keys: list[list[EventPacket]], gap_packets: int) -> None:
        """Send each key's packets, ``gap_packets`` of audio between keys; return once the
        last went out."""
        for packets in keys:
            self._pending.extend((p, i == 0) for i, p in enumerate(packets))
            self._pending.extend((None, False) for _ in range(gap_packets))
        send_rtp: Callable[[bytes], Awaitable[None]] = self._transport._send_rtp
        self._transport._send_rtp = lambda data: send_rtp(self._rewrite(data))
        try:
            await asyncio.wait_for(self._sent.wait(), timeout=len(self._pending) * 0.02 + 5)
        finally:
            del self._transport._send_rtp  # the class's method again

    def _rewrite(self, data: bytes) -> bytes:
        fields = None if is_rtcp(data) else unpack_rtp(data)
        if fields is None or not self._pending:
            return data
        event, first = self._pending.popleft()
        if not self._pending:
            self._sent.set()
        if event is None:
            return data
        timestamp, start = fields[2], fields[4]
        if first:
            self._start = timestamp
        header = bytearray(data[:start])
        header[1] = (0x80 if event.marker else 0) | self._payload_type
        header[4:8] = self._start.to_bytes(4, "big")
        return bytes(header) + event.payload


class WebRtcTestPeer:
    """One signalling socket and at most one call at a time (enough for the tests)."""

    def __init__(self, url: str, token: str, tone_hz: float | None = None) -> None:
        self.url = f"{url}?token={token}"
        self.tone = ToneTrack(tone_hz)
        self.messages: list[dict[str, Any]] = []
        self.heard: list[np.ndarray] = []
        self.heard_at: list[float] = []  # the loop time each of ``heard`` arrived
        self.call_id: str | None = None
        self.pc: RTCPeerConnection | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._ws: Any = None
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._taken = 0  # messages before this index have been consumed by expect()
        self._refs = itertools.count(1)

    async def __aenter__(self) -> WebRtcTestPeer:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self._ws = await websockets.connect(self.url)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    # -- signalling -----------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(message))

    async def expect(
        self, kind: str, timeout: float = 5.0, where: Callable[[dict[str, Any]], bool] = bool
    ) -> dict[str, Any]:
        """The next message of ``kind`` not yet taken; earlier ones of other kinds are kept."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for index in range(self._taken, len(self.messages)):
                    message = self.messages[index]
                    if message["type"] == kind and where(message):
                        self._taken = index + 1
                        return message
                if self._reader is not None and self._reader.done():
                    raise ConnectionError(f"socket closed ({self.close_code} {self.close_reason})")
                await self._changed.wait()

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        """Wait for the gateway to close the socket: its close code and reason."""
        assert self._reader is not None
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._reader)
        return self.close_code, self.close_reason

    async def _read(self) -> None:
        try:
            async for text in self._ws:
                message = json.loads(text)
                if message.get("sdp") and message["type"] in ("early-media", "answered"):
                    await self._take_answer(message["sdp"])
                async with self._changed:
                    self.messages.append(message)
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code, self.close_reason = self._ws.close_code, self._ws.close_reason
            async with self._changed:
                self._changed.notify_all()

    # -- calls ----------------------------------------------------------------------------

    async def answer(self, incoming: dict[str, Any]) -> None:
        """Answer an ``incoming`` call: its offer, our tone, our answer."""
        pc = self._new_pc()
        await pc.setRemoteDescription(RTCSessionDescription(incoming["sdp"], "offer"))
        pc.addTrack(self.tone)
        await pc.setLocalDescription(await pc.createAnswer())
        self.call_id = incoming["callId"]
        await self.send({"type": "answer", "callId": self.call_id, "sdp": pc.localDescription.sdp})

    async def call(self, to: str) -> str:
        """Place a call; returns its callId once the gateway took it (``calling``)."""
        pc = self._new_pc()
        pc.addTransceiver(self.tone, direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        ref = f"r{next(self._refs)}"
        await self.send({"type": "call", "ref": ref, "to": to, "sdp": pc.localDescription.sdp})
        calling = await self.expect("calling", where=lambda m: m.get("ref") == ref)
        self.call_id = calling["callId"]
        return calling["callId"]

    async def hangup(self) -> None:
        await self.send({"type": "hangup", "callId": self.call_id})

    async def reject(self, call_id: str, reason: str | None = None) -> None:
        await self.send({"type": "reject", "callId": call_id, "reason": reason})

    async def dtmf(self, digits: str) -> None:
        """Keys as ``dtmf`` signalling messages (a browser without telephone-event)."""
        await self.send({"type": "dtmf", "callId": self.call_id, "digits": digits})

    async def press_keys(self, digits: str, duration_ms: int = 100, gap_ms: int = 60) -> None:
        """Keys as RFC 4733 events in our RTP stream, at the clock rate of the voice codec
        we send with; returns once the last packet (the third end packet) went out."""
        assert self.pc is not None and self.pc.remoteDescription is not None
        payload_type, clock_rate = self.telephone_event()
        sender = next(s for s in self.pc.getSenders() if s.kind == "audio")
        keys = [digit_packets(d, duration_ms, clock_rate=clock_rate) for d in digits]
        await EventInjector(sender, payload_type).send(keys, gap_ms // 20)

    def telephone_event(self) -> tuple[int, int]:
        """The negotiated telephone-event that pairs with our send codec: (payload type,
        clock rate). aiortc sends with the first codec both sides listed, in the remote's
        order."""
        assert self.pc is not None and self.pc.remoteDescription is not None
        codecs = SessionDescription.parse(self.pc.remoteDescription.sdp).media[0].rtp.codecs
        voice = next(c for c in codecs if not is_telephone_event(c))
        event = next(
            (c for c in codecs if is_telephone_event(c) and c.clockRate == voice.clockRate), None
        )
        if event is None:
            raise LookupError(f"no telephone-event/{voice.clockRate} negotiated")
        return event.payloadType, event.clockRate

    def heard_audio(self, last_seconds: float | None = None) -> np.ndarray:
        pcm = np.concatenate(self.heard) if self.heard else np.zeros(0, dtype=np.int16)
        return pcm if last_seconds is None else pcm[-int(last_seconds * RATE) :]

    async def wait_heard(self, seconds: float, timeout: float = 5.0, level: int = 300) -> None:
        """Wait until ``seconds`` of audio louder than ``level`` (peak) have arrived."""
        async with asyncio.timeout(timeout):
            while sum(len(f) for f in self.heard if np.abs(f).max() > level) < seconds * RATE:
                await asyncio.sleep(0.02)

    async def mute(self, muted: bool = True) -> None:
        await self.send({"type": "mute", "callId": self.call_id, "muted": muted})

    def first_heard_after(self, moment: float, level: int = 300) -> float | None:
        """When the first frame louder than ``level`` arrived after ``moment`` (loop time)."""
        for at, frame in zip(self.heard_at, self.heard, strict=True):
            if at >= moment and np.abs(frame).max() > level:
                return at
        return None

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.drop_media()
        self.tone.stop()

    async def drop_media(self) -> None:
        """Close the peer connection (the page's media goes, the socket stays)."""
        if self._recorder is not None:
            self._recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recorder
            self._recorder = None
        if self.pc is not None:
            await self.pc.close()
            self.pc = None

    # -- internals ------------------------------------------------------------------------

    def _new_pc(self) -> RTCPeerConnection:
        pc = self.pc = new_peer_connection(IceSettings())

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._recorder = asyncio.get_running_loop().create_task(self._record(track))

        return pc

    async def _take_answer(self, sdp: str) -> None:
        if self.pc is not None and self.pc.signalingState == "have-local-offer":
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def _record(self, track: MediaStreamTrack) -> None:
        resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = asyncio.get_running_loop().time()
                for out in resampler.resample(frame):
                    self.heard.append(out.to_ndarray().reshape(-1).copy())
                    self.heard_at.append(now)
