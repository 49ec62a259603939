"""An aiortc WebRTC peer for tests: a browser stand-in that speaks the gateway's signalling.

It connects to ``/webrtc/1/signalling`` with a token, answers ``incoming`` calls or places
its own, sends a tone (or silence) and records what it hears at 8 kHz, so a test can check
the frequency that came through.

    async with WebRtcTestPeer(ws_url, token, tone_hz=440) as peer:
        incoming = await peer.expect("incoming")
        await peer.answer(incoming)
        await peer.wait_heard(1.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import websockets
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

from trunks.webrtc.peer import IceSettings, new_peer_connection

RATE = 8000
SAMPLES = RATE // 50


class ToneTrack(MediaStreamTrack):
    """A sine (or silence when ``frequency`` is None) in 20 ms frames at real-time pace."""

    kind = "audio"

    def __init__(self, frequency: float | None, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self._amplitude = amplitude
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            await asyncio.sleep(max(0.0, self._start + self._sent * 0.02 - loop.time()))
        n = np.arange(self._sent * SAMPLES, (self._sent + 1) * SAMPLES)
        if self.frequency is None:
            samples = np.zeros(SAMPLES, dtype=np.int16)
        else:
            wave = self._amplitude * np.sin(2 * np.pi * self.frequency * n / RATE)
            samples = (wave * 32767).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, self._sent * SAMPLES
        frame.time_base = fractions.Fraction(1, RATE)
        self._sent += 1
        return frame


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
        await self.send({"type": "dtmf", "callId": self.call_id, "digits": digits})

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
