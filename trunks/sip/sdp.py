"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for the B2BUA's audio legs.

``sdp_transform`` does the text; this module keeps a small typed model of what the media plane
needs (address, port, codecs, direction, ptime, RTCP) and drops every other attribute. Each leg
negotiates on its own: we answer what the remote offered, or check what it answered to our offer.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import sdp_transform

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]

_DIRECTIONS: dict[tuple[bool, bool], Direction] = {
    (True, True): "sendrecv",
    (True, False): "sendonly",
    (False, True): "recvonly",
    (False, False): "inactive",
}
# RFC 2543 hold: the offerer points media at nowhere instead of saying sendonly.
_HOLD_ADDRESSES = frozenset({"0.0.0.0", "::"})


class SdpError(ValueError):
    """The SDP is malformed, or an answer does not fit the offer it answers."""


class NoCommonCodec(SdpError):
    """No audio stream can be used: nothing in common, or everything was rejected."""


@dataclass(frozen=True)
class Codec:
    """One payload format of an m-line: ``a=rtpmap`` plus its ``a=fmtp``."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    def matches(self, other: Codec) -> bool:
        """Same codec whatever the payload type: names are case-insensitive (RFC 4566 §6)."""
        return (self.name.lower(), self.clock_rate, self.channels) == (
            other.name.lower(),
            other.clock_rate,
            other.channels,
        )

    @property
    def is_auxiliary(self) -> bool:
        """DTMF and comfort noise ride along with a voice codec but cannot be chosen as one."""
        return self.name.lower() in ("telephone-event", "cn")


# RFC 3551 §6: static payload types that may appear without an rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, Codec] = {
    codec.payload_type: codec
    for codec in (
        Codec(0, "PCMU", 8000),
        Codec(3, "GSM", 8000),
        Codec(4, "G723", 8000),
        Codec(5, "DVI4", 8000),
        Codec(6, "DVI4", 16000),
        Codec(7, "LPC", 8000),
        Codec(8, "PCMA", 8000),
        Codec(9, "G722", 8000),  # samples at 16 kHz, but RFC 3551 fixed the RTP clock at 8000
        Codec(10, "L16", 44100, 2),
        Codec(11, "L16", 44100),
        Codec(12, "QCELP", 8000),
        Codec(13, "CN", 8000),
        Codec(14, "MPA", 90000),
        Codec(15, "G728", 8000),
        Codec(16, "DVI4", 11025),
        Codec(17, "DVI4", 22050),
        Codec(18, "G729", 8000),
        Codec(25, "CelB", 90000),
        Codec(26, "JPEG", 90000),
        Codec(28, "nv", 90000),
        Codec(31, "H261", 90000),
        Codec(32, "MPV", 90000),
        Codec(33, "MP2T", 90000),
        Codec(34, "H263", 90000),
    )
}

PCMU = STATIC_PAYLOAD_TYPES[0]
PCMA = STATIC_PAYLOAD_TYPES[8]
G722 = STATIC_PAYLOAD_TYPES[9]
OPUS = Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1")
TELEPHONE_EVENT = Codec(101, "telephone-event", 8000, fmtp="0-16")
DEFAULT_CODECS: list[Codec] = [PCMU, PCMA, G722, OPUS, TELEPHONE_EVENT]


@dataclass(frozen=True)
class MediaDescription:
    """One m-line. ``connection`` is resolved: the media-level c=, else the session-level one."""

    kind: str
    port: int
    transport: str
    connection: str
    codecs: tuple[Codec, ...] = ()
    # The fmt tokens of a non-RTP m-line (``udptl t38``), kept so a rejection can echo them.
    formats: tuple[str, ...] = ()
    ptime: int | None = None
    direction: Direction = "sendrecv"
    rtcp_port: int | None = None
    rtcp_address: str | None = None
    rtcp_mux: bool = False

    @property
    def effective_direction(self) -> Direction:
        """The direction with RFC 2543 hold (c=0.0.0.0: "don't send to me") folded in."""
        send, receive = _flags(self.direction)
        return _DIRECTIONS[send, receive and self.connection not in _HOLD_ADDRESSES]


@dataclass(frozen=True)
class Origin:
    """The o= line; RFC 3264 §8 ties the version to changes in the SDP that follows it."""

    username: str
    session_id: int
    version: int
    address: str


@dataclass(frozen=True)
class SessionDescription:
    origin: Origin
    media: tuple[MediaDescription, ...]
    name: str = "-"
    connection: str | None = None

    def serialize(self) -> bytes:
        return build_sdp(self)


@dataclass(frozen=True)
class NegotiatedMedia:
    """What the media plane needs after offer/answer.

    ``codec`` is the remote's entry (its payload type and fmtp bind what we send);
    ``direction`` is ours, ``remote_direction`` the remote's own as its SDP declared it (hold
    folded in); ``remote_rtcp`` is where to send RTCP (the RTP address when muxed).
    """

    codec: Codec
    telephone_event: int | None
    remote_rtp: tuple[str, int]
    remote_rtcp: tuple[str, int]
    direction: Direction
    ptime: int | None
    rtcp_mux: bool = False
    remote_direction: Direction = "sendrecv"


# --- parsing and writing -------------------------------------------------------------------


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse an SDP body; :class:`SdpError` says which line is missing or wrong."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError("SDP is not UTF-8") from exc
    raw = sdp_transform.parse(body)
    # sdp_transform skips lines its grammar does not match, so look at the text to tell a
    # missing line from a malformed one. Its line filter is reused so m-lines pair up.
    lines = [line for line in body.splitlines() if re.match(r"^[a-z]=", line)]
    starts = [index for index, line in enumerate(lines) if line.startswith("m=")]
    if "version" not in raw:
        raise SdpError(_missing_or_malformed("v", lines))
    if raw["version"] != 0:
        raise SdpError(f"unsupported SDP version {raw['version']!r}")
    origin = raw.get("origin", {})
    session_id, version = _int(origin.get("sessionId")), _int(origin.get("sessionVersion"))
    if session_id is None or version is None or not origin.get("address"):
        raise SdpError(_missing_or_malformed("o", lines))
    if not starts:
        raise SdpError("missing m= line")
    session_connection = _connection(raw, lines[: starts[0]])
    blocks = [lines[a:b] for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]
    media = tuple(
        _parse_media(entry, block, raw, session_connection)
        for entry, block in zip(raw["media"], blocks, strict=True)
    )
    return SessionDescription(
        origin=Origin(str(origin["username"]), session_id, version, str(origin["address"])),
        media=media,
        name=str(raw.get("name", "-")),
        connection=session_connection,
    )


def build_sdp(sdp: SessionDescription) -> bytes:
    """Write ``sdp``; a media-level c= only where it differs from the session-level one."""
    origin = sdp.origin
    raw: dict[str, Any] = {
        "version": 0,
        "origin": {
            "username": origin.username,
            "sessionId": origin.session_id,
            "sessionVersion": origin.version,
            "netType": "IN",
            "ipVer": _ip_version(origin.address),
            "address": origin.address,
        },
        "name": sdp.name,
        "timing": {"start": 0, "stop": 0},
        "media": [_write_media(media, sdp.connection) for media in sdp.media],
    }
    if sdp.connection is not None:
        raw["connection"] = {"version": _ip_version(sdp.connection), "ip": sdp.connection}
    return sdp_transform.write(raw).encode()


def _missing_or_malformed(letter: str, lines: list[str]) -> str:
    prefix = f"{letter}="
    line = next((line for line in lines if line.startswith(prefix)), None)
    return f"missing {prefix} line" if line is None else f"malformed {prefix} line: {line!r}"


def _int(value: Any) -> int | None:
    """sdp_transform yields an int when a numeric field parsed, else whatever text was there."""
    return value if isinstance(value, int) else None


def _connection(raw: dict[str, Any], lines: list[str]) -> str | None:
    address = raw.get("connection", {}).get("ip")
    if address:
        return str(address)
    if any(line.startswith("c=") for line in lines):
        raise SdpError(_missing_or_malformed("c", lines))
    return None


def _parse_media(
    raw: dict[str, Any], lines: list[str], session: dict[str, Any], session_connection: str | None
) -> MediaDescription:
    line = lines[0]
    if not raw.get("type") or not raw.get("protocol"):
        raise SdpError(f"malformed m= line: {line!r}")
    port = _int(raw["port"])
    if port is None or not 0 <= port <= 65535:
        raise SdpError(f"bad port in m= line: {line!r}")
    connection = _connection(raw, lines) or session_connection
    if connection is None:
        raise SdpError(f"no connection address (c=) for {line!r}")
    transport = str(raw["protocol"])
    formats = str(raw.get("payloads", "")).split()
    if not formats:
        raise SdpError(f"m= line lists no formats: {line!r}")
    is_rtp = "RTP/" in transport.upper()
    rtcp = raw.get("rtcp", {})
    ptime = raw.get("ptime")
    return MediaDescription(
        kind=str(raw["type"]),
        port=port,
        transport=transport,
        connection=connection,
        codecs=_parse_codecs(raw, formats, line) if is_rtp else (),
        formats=() if is_rtp else tuple(formats),
        ptime=int(ptime) if isinstance(ptime, int | float) and ptime > 0 else None,
        direction=raw.get("direction") or session.get("direction") or "sendrecv",
        rtcp_port=_int(rtcp.get("port")),
        rtcp_address=str(rtcp["address"]) if "address" in rtcp else None,
        rtcp_mux="rtcpMux" in raw,
    )


def _parse_codecs(raw: dict[str, Any], formats: list[str], line: str) -> tuple[Codec, ...]:
    rtpmaps = {e["payload"]: e for e in raw["rtp"] if _int(e.get("rate")) and e.get("codec")}
    fmtps = {entry["payload"]: str(entry["config"]) for entry in raw["fmtp"]}
    codecs = []
    for token in formats:
        if not token.isdigit() or int(token) > 127:
            raise SdpError(f"bad payload type {token!r} in {line!r}")
        payload_type = int(token)
        rtpmap = rtpmaps.get(payload_type)
        if rtpmap is not None:
            channels = _int(rtpmap.get("encoding", 1))
            if not channels:
                raise SdpError(f"bad channel count in a=rtpmap for payload type {payload_type}")
            codec = Codec(payload_type, str(rtpmap["codec"]), rtpmap["rate"], channels)
        elif payload_type in STATIC_PAYLOAD_TYPES:
            codec = STATIC_PAYLOAD_TYPES[payload_type]
        else:
            raise SdpError(f"payload type {payload_type} has no a=rtpmap in {line!r}")
        codecs.append(replace(codec, fmtp=fmtps.get(payload_type)))
    return tuple(codecs)


def _write_media(media: MediaDescription, session_connection: str | None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": media.kind,
        "port": media.port,
        "protocol": media.transport,
        "payloads": " ".join(media.formats or [str(c.payload_type) for c in media.codecs]),
        "rtp": [
            {"payload": c.payload_type, "codec": c.name, "rate": c.clock_rate}
            | ({"encoding": c.channels} if c.channels != 1 else {})
            for c in media.codecs
        ],
        "fmtp": [{"payload": c.payload_type, "config": c.fmtp} for c in media.codecs if c.fmtp],
        "direction": media.direction,
    }
    if media.connection != session_connection:
        raw["connection"] = {"version": _ip_version(media.connection), "ip": media.connection}
    if media.ptime is not None:
        raw["ptime"] = media.ptime
    if media.rtcp_port is not None:
        raw["rtcp"] = {"port": media.rtcp_port}
        if media.rtcp_address is not None:
            raw["rtcp"] |= {
                "netType": "IN",
                "ipVer": _ip_version(media.rtcp_address),
                "address": media.rtcp_address,
            }
    if media.rtcp_mux:
        raw["rtcpMux"] = "rtcp-mux"
    return raw


def _ip_version(address: str) -> int:
    return 6 if ":" in address else 4


# --- offer/answer --------------------------------------------------------------------------


@dataclass
class SessionState:
    """Our o= line for one leg, shared by every offer and answer we send on it.

    RFC 3264 §8: the session id never changes, the version goes up by one when the SDP does
    and stays put on an unmodified re-offer (a session refresh).
    """

    address: str
    username: str = "-"
    session_id: int = field(default_factory=lambda: secrets.randbelow(2**62))
    version: int = 0
    last_sent: SessionDescription | None = None

    def stamp(self, sdp: SessionDescription) -> SessionDescription:
        """Give ``sdp`` our o= line, bumping the version only if it differs from the last."""
        return self.commit(self.propose(sdp))

    def propose(self, sdp: SessionDescription) -> SessionDescription:
        """``sdp`` with the o= line it would be sent with, the state left as it is: an offer
        whose answer may never come (a re-INVITE refused) must not move the version."""
        version = self.version
        if self.last_sent is not None and replace(sdp, origin=self.last_sent.origin) != (
            self.last_sent
        ):
            version += 1
        return replace(sdp, origin=Origin(self.username, self.session_id, version, self.address))

    def commit(self, sdp: SessionDescription) -> SessionDescription:
        """``sdp`` (from :meth:`propose`) was sent: it is the last, its version the current."""
        self.version = sdp.origin.version
        self.last_sent = sdp
        return sdp

    def hold(self, direction: Direction = "sendonly") -> SessionDescription:
        """A re-offer of our last SDP putting the audio on hold (inactive if they hold us too)."""
        return self._redirect(direction)

    def resume(self) -> SessionDescription:
        return self._redirect("sendrecv")

    def _redirect(self, direction: Direction) -> SessionDescription:
        if self.last_sent is None:
            raise SdpError("no SDP sent on this leg yet")
        media = tuple(
            replace(m, direction=direction) if m.port and m.kind == "audio" else m
            for m in self.last_sent.media
        )
        return self.stamp(replace(self.last_sent, media=media))


def make_offer(
    address: str,
    port: int,
    codecs: Sequence[Codec],
    ptime: int | None = 20,
    direction: Direction = "sendrecv",
    *,
    session: SessionState,
    rtcp_mux: bool = False,
    commit: bool = True,
) -> SessionDescription:
    """An initial offer (or a re-offer) with one RTP/AVP audio stream. Without ``commit`` it
    is only proposed: a re-INVITE's offer counts once answered (:meth:`SessionState.commit`)."""
    if all(codec.is_auxiliary for codec in codecs):
        raise SdpError("an offer needs at least one voice codec")
    media = MediaDescription(
        kind="audio",
        port=port,
        transport="RTP/AVP",
        connection=address,
        codecs=tuple(codecs),
        ptime=ptime,
        direction=direction,
        rtcp_mux=rtcp_mux,
    )
    offer = session.propose(_our_session(session, address, media))
    return session.commit(offer) if commit else offer


def answer(
    offer: SessionDescription,
    address: str,
    port: int,
    supported: Sequence[Codec],
    *,
    session: SessionState,
    transports: Sequence[str] = ("RTP/AVP",),
    rtcp_mux: bool = False,
    direction: Direction = "sendrecv",
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer per RFC 3264 §6: same m-lines in the same order, the first usable audio stream
    accepted and every other one rejected with port 0 (our media plane carries one stream).
    ``direction`` is what the answerer would do at most (a bypassed endpoint's partner's own).

    The accepted stream lists the common codecs in the offerer's order with the offerer's
    payload types, plus telephone-event if both do it. Raises :class:`NoCommonCodec` if no
    stream is usable, so the caller can answer 488.
    """
    answered: list[MediaDescription] = []
    negotiated: NegotiatedMedia | None = None
    for offered in offer.media:
        accepted = None
        if negotiated is None and offered.port and offered.kind == "audio":
            accepted = _accept(offered, address, port, supported, transports, rtcp_mux, direction)
        if accepted is None:
            answered.append(_rejected(offered, address))
            continue
        media, negotiated = accepted
        answered.append(media)
    if negotiated is None:
        raise NoCommonCodec("no offered audio stream has a codec and transport we support")
    return session.stamp(_our_session(session, address, *answered)), negotiated


def apply_answer(offer: SessionDescription, received: SessionDescription) -> NegotiatedMedia:
    """Check the answer to our offer against RFC 3264 §6 and say what was agreed."""
    if len(received.media) != len(offer.media):
        raise SdpError(f"answer has {len(received.media)} m-lines, offer had {len(offer.media)}")
    negotiated: NegotiatedMedia | None = None
    for index, (offered, answered) in enumerate(zip(offer.media, received.media, strict=True)):
        if answered.kind != offered.kind:
            raise SdpError(f"m-line {index} is {answered.kind}, offered {offered.kind}")
        if not answered.port:
            continue
        if not offered.port:
            raise SdpError(f"m-line {index} accepted but the offer had disabled it")
        if answered.transport != offered.transport:
            raise SdpError(
                f"m-line {index} answered {answered.transport}, offered {offered.transport}"
            )
        for codec in answered.codecs:
            if not any(codec.matches(ours) for ours in offered.codecs):
                raise SdpError(f"m-line {index} answers {_describe(codec)}, which was not offered")
        voice = [codec for codec in answered.codecs if not codec.is_auxiliary]
        if not voice and answered.codecs:
            raise SdpError(f"m-line {index} answers no voice codec")
        direction = _agreed(offered.direction, answered.effective_direction)
        if negotiated is None and offered.kind == "audio" and voice:
            event = _telephone_event(answered.codecs, voice[0])
            mux = offered.rtcp_mux and answered.rtcp_mux
            negotiated = _negotiated(answered, voice[0], event, direction, mux)
    if negotiated is None:
        raise NoCommonCodec("the answer rejected every audio stream")
    return negotiated


def _accept(
    offered: MediaDescription,
    address: str,
    port: int,
    supported: Sequence[Codec],
    transports: Sequence[str],
    rtcp_mux: bool,
    most: Direction,
) -> tuple[MediaDescription, NegotiatedMedia] | None:
    if offered.transport.upper() not in {t.upper() for t in transports}:
        return None
    common = []
    for theirs in offered.codecs:
        ours = next((codec for codec in supported if codec.matches(theirs)), None)
        if ours is not None:
            common.append(replace(ours, payload_type=theirs.payload_type))
    voice = [codec for codec in common if not codec.is_auxiliary]
    if not voice:
        return None
    remote = next(c for c in offered.codecs if c.payload_type == voice[0].payload_type)
    event = _telephone_event(common, voice[0])
    codecs = tuple(
        codec
        for codec in common
        if codec.name.lower() != "telephone-event" or codec.payload_type == event
    )
    direction = _agreed(most, offered.effective_direction)
    mux = rtcp_mux and offered.rtcp_mux
    media = MediaDescription(
        kind="audio",
        port=port,
        transport=offered.transport,
        connection=address,
        codecs=codecs,
        ptime=offered.ptime,
        direction=direction,
        rtcp_mux=mux,
    )
    return media, _negotiated(offered, remote, event, direction, mux)


def _rejected(offered: MediaDescription, address: str) -> MediaDescription:
    """Port 0 with the offered formats echoed: RFC 3264 §6 wants at least one listed."""
    return MediaDescription(
        kind=offered.kind,
        port=0,
        transport=offered.transport,
        connection=address,
        codecs=offered.codecs,
        formats=offered.formats,
    )


def _negotiated(
    remote: MediaDescription,
    codec: Codec,
    telephone_event: int | None,
    direction: Direction,
    rtcp_mux: bool,
) -> NegotiatedMedia:
    rtp = (remote.connection, remote.port)
    rtcp = (
        rtp
        if rtcp_mux
        else (
            remote.rtcp_address or remote.connection,
            remote.rtcp_port or remote.port + 1,  # RFC 3550 §11: the next port up by default
        )
    )
    return NegotiatedMedia(
        codec,
        telephone_event,
        rtp,
        rtcp,
        direction,
        remote.ptime,
        rtcp_mux,
        remote.effective_direction,
    )


def _telephone_event(codecs: Sequence[Codec], voice: Codec) -> int | None:
    """RFC 4733 §2.1: events should share the voice codec's clock; else take any offered."""
    events = [codec for codec in codecs if codec.name.lower() == "telephone-event"]
    same_clock = [codec for codec in events if codec.clock_rate == voice.clock_rate]
    chosen = (same_clock or events or [None])[0]
    return chosen.payload_type if chosen else None


def _our_session(
    session: SessionState, address: str, *media: MediaDescription
) -> SessionDescription:
    origin = Origin(session.username, session.session_id, session.version, session.address)
    return SessionDescription(origin=origin, media=media, connection=address)


def _flags(direction: Direction) -> tuple[bool, bool]:
    return direction in ("sendrecv", "sendonly"), direction in ("sendrecv", "recvonly")


def _agreed(ours: Direction, theirs: Direction) -> Direction:
    """Our side of RFC 3264 §6.1's mirror: we send only what they receive and vice versa.

    Intersecting with what we offered also tames answers that claim more than the offer allowed
    (sendrecv to our sendonly), which real UAs send.
    """
    send, receive = _flags(ours)
    their_send, their_receive = _flags(theirs)
    return _DIRECTIONS[send and their_receive, receive and their_send]


def _describe(codec: Codec) -> str:
    channels = f"/{codec.channels}" if codec.channels != 1 else ""
    return f"{codec.name}/{codec.clock_rate}{channels} (PT {codec.payload_type})"
