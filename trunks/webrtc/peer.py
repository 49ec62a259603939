"""One aiortc peer connection per WebRTC leg, configured from settings.

aiortc falls back to a public STUN server when given no ICE servers, so an empty list is
always passed explicitly. aioice has no option for the host addresses it gathers and leaves
127.0.0.1 out; ``use_host_addresses`` replaces its address lookup (process-wide) so that a
gateway can name the addresses it offers, loopback included (tests, a single-host setup).
Importing this module patches RFC 4733 telephone-event into aiortc (``telephone_event``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aioice.ice
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
)

from trunks.webrtc import telephone_event

telephone_event.install()

_original_host_addresses: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses
_host_addresses: list[str] | None = None


def _host_address_lookup(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _host_addresses is None:
        return _original_host_addresses(use_ipv4, use_ipv6)
    return [a for a in _host_addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """Gather host candidates on exactly ``addresses`` (None: every interface but loopback,
    aioice's own choice). Affects every aiortc peer connection in the process."""
    global _host_addresses
    _host_addresses = list(addresses) if addresses else None
    aioice.ice.get_host_addresses = _host_address_lookup


@dataclass(frozen=True)
class IceSettings:
    """STUN/TURN servers (``stun:host:port``, ``turn:host:port?transport=udp``) and the TURN
    credentials, which apply to every TURN URL."""

    urls: tuple[str, ...] = ()
    username: str | None = None
    credential: str | None = None

    @classmethod
    def parse(cls, urls: str, username: str = "", credential: str = "") -> IceSettings:
        return cls(
            tuple(u.strip() for u in urls.split(",") if u.strip()),
            username or None,
            credential or None,
        )

    def servers(self) -> list[RTCIceServer]:
        return [
            RTCIceServer(url, self.username, self.credential)
            if url.startswith("turn")
            else RTCIceServer(url)
            for url in self.urls
        ]


def new_peer_connection(
    ice: IceSettings, on_digit: Callable[[str], None] | None = None
) -> RTCPeerConnection:
    """A peer connection offering aiortc's audio codecs (Opus, PCMU, PCMA) and
    telephone-event, no public STUN. ``on_digit`` is told each key press the far end sends
    as RFC 4733 events, once per press."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=ice.servers()))
    if on_digit is not None:
        telephone_event.listen(pc, on_digit)
    return pc


OFFERED_CODECS = ("audio/opus", "audio/PCMU", "audio/PCMA", telephone_event.MIME_TYPE)


def prefer_voice_codecs(transceiver: RTCRtpTransceiver) -> None:
    """Opus first, then G.711 (µ-law, A-law), then telephone-event (at 48 kHz for Opus,
    8 kHz for G.711); nothing else (aiortc would add G.722)."""
    codecs = RTCRtpSender.getCapabilities("audio").codecs
    ranked = sorted(
        (c for c in codecs if c.mimeType in OFFERED_CODECS),
        key=lambda c: OFFERED_CODECS.index(c.mimeType),  # stable: 48 kHz events, then 8 kHz
    )
    transceiver.setCodecPreferences(ranked)
