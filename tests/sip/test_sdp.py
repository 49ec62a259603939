"""SDP parsing/writing and RFC 3264 offer/answer for the B2BUA's audio legs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trunks.sip.sdp import (
    DEFAULT_CODECS,
    G722,
    OPUS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    MediaDescription,
    NegotiatedMedia,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    SessionState,
    answer,
    apply_answer,
    build_sdp,
    make_offer,
    parse_sdp,
)

SIPP_OFFER = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.1.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.1.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 8 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-11,16\r\n"
)

BARESIP_OFFER = b"""v=0
o=- 1218880425 2553011384 IN IP4 192.168.1.20
s=-
c=IN IP4 192.168.1.20
t=0 0
m=audio 10172 RTP/AVP 96 9 0 8 97 13
b=AS:64
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:97 telephone-event/8000
a=fmtp:97 0-15
a=rtpmap:13 CN/8000
a=rtcp:10173 IN IP4 192.168.1.20
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:3203424476 cname:2a3c1d6e-4f8e
a=rtcp-mux
a=ptime:20
"""


def offer_sdp(*media: str, connection: str = "c=IN IP4 198.51.100.7") -> bytes:
    """A minimal offer around the given m-line blocks."""
    head = ["v=0", "o=- 42 1 IN IP4 198.51.100.7", "s=call", connection, "t=0 0"]
    return "\r\n".join([*head, *media, ""]).encode()


AUDIO_PCMU = "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000"
AUDIO_G729 = "m=audio 4002 RTP/AVP 18\r\na=rtpmap:18 G729/8000"


@pytest.fixture
def state() -> SessionState:
    return SessionState(address="203.0.113.5", session_id=777)


def test_parses_a_sipp_offer() -> None:
    sdp = parse_sdp(SIPP_OFFER)

    assert sdp.origin.username == "user1"
    assert (sdp.origin.session_id, sdp.origin.version) == (53655765, 2353687637)
    assert sdp.origin.address == "127.0.1.1"
    assert (sdp.name, sdp.connection) == ("-", "127.0.1.1")
    [audio] = sdp.media
    assert (audio.kind, audio.port, audio.transport) == ("audio", 6000, "RTP/AVP")
    assert audio.connection == "127.0.1.1"
    assert audio.codecs == (
        Codec(8, "PCMA", 8000),
        Codec(101, "telephone-event", 8000, fmtp="0-11,16"),
    )
    assert (audio.direction, audio.ptime, audio.rtcp_port, audio.rtcp_mux) == (
        "sendrecv",
        None,
        None,
        False,
    )


def test_parses_a_baresip_offer_with_several_codecs_and_rtcp() -> None:
    [audio] = parse_sdp(BARESIP_OFFER).media

    assert [c.payload_type for c in audio.codecs] == [96, 9, 0, 8, 97, 13]
    assert audio.codecs[0] == Codec(96, "opus", 48000, 2, "stereo=1;sprop-stereo=1")
    assert audio.codecs[1] == Codec(9, "G722", 8000)
    assert audio.codecs[4] == Codec(97, "telephone-event", 8000, fmtp="0-15")
    assert (audio.rtcp_port, audio.rtcp_address, audio.rtcp_mux) == (
        10173,
        "192.168.1.20",
        True,
    )
    assert audio.ptime == 20


def test_static_payload_types_need_no_rtpmap() -> None:
    [audio] = parse_sdp(offer_sdp("m=audio 4000 RTP/AVP 0 3 8 9 13 18")).media

    assert audio.codecs == (
        Codec(0, "PCMU", 8000),
        Codec(3, "GSM", 8000),
        Codec(8, "PCMA", 8000),
        Codec(9, "G722", 8000),  # RFC 3551's 8000, not the 16 kHz it samples at
        Codec(13, "CN", 8000),
        Codec(18, "G729", 8000),
    )


def test_fmtp_attaches_to_a_static_payload_type() -> None:
    [audio] = parse_sdp(offer_sdp("m=audio 4000 RTP/AVP 18\r\na=fmtp:18 annexb=no")).media

    assert audio.codecs == (Codec(18, "G729", 8000, fmtp="annexb=no"),)


def test_ipv6_connection_and_origin() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n"
        b"m=audio 5004 RTP/AVP 0\r\n"
    )
    sdp = parse_sdp(body)

    assert sdp.origin.address == "2001:db8::1"
    assert sdp.media[0].connection == "2001:db8::1"
    written = sdp.serialize()
    assert b"o=- 1 1 IN IP6 2001:db8::1\r\n" in written
    assert b"c=IN IP6 2001:db8::1\r\n" in written


def test_media_level_connection_overrides_the_session_one() -> None:
    sdp = parse_sdp(offer_sdp(AUDIO_PCMU + "\r\nc=IN IP6 2001:db8::9"))

    assert sdp.connection == "198.51.100.7"
    assert sdp.media[0].connection == "2001:db8::9"


def test_session_level_direction_applies_to_media_without_their_own() -> None:
    body = offer_sdp(AUDIO_PCMU, AUDIO_PCMU + "\r\na=inactive").replace(
        b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n"
    )

    assert [m.direction for m in parse_sdp(body).media] == ["sendonly", "inactive"]


def test_codec_names_compare_case_insensitively_with_clock_and_channels() -> None:
    assert Codec(0, "pcmu", 8000).matches(PCMU)
    assert Codec(120, "OPUS", 48000, 2).matches(OPUS)
    assert not Codec(120, "opus", 48000).matches(OPUS)
    assert not Codec(9, "G722", 16000).matches(G722)


def test_default_codecs() -> None:
    assert [(c.payload_type, c.name, c.clock_rate, c.channels) for c in DEFAULT_CODECS] == [
        (0, "PCMU", 8000, 1),
        (8, "PCMA", 8000, 1),
        (9, "G722", 8000, 1),
        (111, "opus", 48000, 2),
        (101, "telephone-event", 8000, 1),
    ]
    assert OPUS.fmtp == "minptime=10;useinbandfec=1"
    assert TELEPHONE_EVENT.fmtp == "0-16"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"o=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n", "v="),
        (
            b"v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
            "version",
        ),
        (b"v=0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n", "missing o="),
        (
            b"v=0\r\no=- x 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
            "malformed o=",
        ),
        (offer_sdp(), "missing m="),
        (offer_sdp("m=audio 99999 RTP/AVP 0"), "bad port"),
        (offer_sdp("m=audio abc RTP/AVP 0"), "malformed m="),
        (offer_sdp("m=audio 4000 RTP/AVP"), "no formats"),
        (offer_sdp("m=audio 4000 RTP/AVP 0 pcmu"), "bad payload type 'pcmu'"),
        (offer_sdp("m=audio 4000 RTP/AVP 200"), "bad payload type '200'"),
        (offer_sdp("m=audio 4000 RTP/AVP 0", connection="c=IN IP4"), "malformed c="),
        (offer_sdp("m=audio 4000 RTP/AVP 0", connection=""), "no connection address"),
        (offer_sdp("m=audio 4000 RTP/AVP 96"), "payload type 96 has no a=rtpmap"),
        (offer_sdp("m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/x"), "channel count"),
        (b"v=0\r\ns=\xff\r\n", "UTF-8"),
        (b"this is not SDP", "missing v="),
    ],
)
def test_malformed_sdp_is_rejected_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(SdpError, match=reason):
        parse_sdp(body)


def test_round_trip_of_parsed_sdp() -> None:
    for body in (SIPP_OFFER, BARESIP_OFFER):
        sdp = parse_sdp(body)
        assert parse_sdp(sdp.serialize()) == sdp


def test_round_trip_keeps_media_level_connections_ipv6_and_non_rtp_media() -> None:
    sdp = SessionDescription(
        origin=parse_sdp(SIPP_OFFER).origin,
        name="b2bua",
        connection=None,
        media=(
            MediaDescription("audio", 4000, "RTP/AVP", "2001:db8::2", (PCMU, OPUS), ptime=30),
            MediaDescription("image", 0, "udptl", "192.0.2.1", formats=("t38",)),
        ),
    )

    written = build_sdp(sdp)

    assert written.count(b"\r\nc=") == 2
    assert b"a=rtpmap:111 opus/48000/2\r\n" in written
    assert b"m=image 0 udptl t38\r\n" in written
    assert parse_sdp(written) == sdp


def test_make_offer_and_its_text(state: SessionState) -> None:
    offer = make_offer("203.0.113.5", 30000, DEFAULT_CODECS, session=state)

    text = offer.serialize().decode()
    assert text.startswith("v=0\r\no=- 777 0 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\n")
    assert "m=audio 30000 RTP/AVP 0 8 9 111 101\r\n" in text
    assert "a=fmtp:101 0-16\r\n" in text
    assert "a=ptime:20\r\na=sendrecv\r\n" in text
    assert parse_sdp(text) == offer


def test_an_offer_needs_a_voice_codec(state: SessionState) -> None:
    with pytest.raises(SdpError, match="voice codec"):
        make_offer("203.0.113.5", 30000, [TELEPHONE_EVENT], session=state)


def test_answer_uses_the_offerers_order_and_payload_types(state: SessionState) -> None:
    offer = parse_sdp(BARESIP_OFFER)

    sdp, media = answer(offer, "203.0.113.5", 30000, DEFAULT_CODECS, session=state)

    [audio] = sdp.media
    assert (audio.port, audio.connection, audio.transport) == (30000, "203.0.113.5", "RTP/AVP")
    assert [(c.payload_type, c.name) for c in audio.codecs] == [
        (96, "opus"),
        (9, "G722"),
        (0, "PCMU"),
        (8, "PCMA"),
        (97, "telephone-event"),
    ]
    assert audio.codecs[0].fmtp == OPUS.fmtp  # what we want to receive
    assert media == NegotiatedMedia(
        codec=Codec(96, "opus", 48000, 2, "stereo=1;sprop-stereo=1"),  # what they want
        telephone_event=97,
        remote_rtp=("192.168.1.20", 10172),
        remote_rtcp=("192.168.1.20", 10173),
        direction="sendrecv",
        ptime=20,
    )
    assert parse_sdp(sdp.serialize()) == sdp


def test_answer_follows_offer_preference_not_ours(state: SessionState) -> None:
    offer = parse_sdp(offer_sdp("m=audio 4000 RTP/AVP 8 0"))

    sdp, media = answer(offer, "203.0.113.5", 30000, [PCMU, PCMA], session=state)

    assert media.codec == Codec(8, "PCMA", 8000)
    assert [c.payload_type for c in sdp.media[0].codecs] == [8, 0]


@pytest.mark.parametrize("event_pt", [96, 101])
def test_telephone_event_takes_the_offerers_payload_type(
    state: SessionState, event_pt: int
) -> None:
    offer = parse_sdp(
        offer_sdp(f"m=audio 4000 RTP/AVP 0 {event_pt}\r\na=rtpmap:{event_pt} telephone-event/8000")
    )

    sdp, media = answer(offer, "203.0.113.5", 30000, DEFAULT_CODECS, session=state)

    assert media.telephone_event == event_pt
    assert sdp.media[0].codecs[-1] == replace(TELEPHONE_EVENT, payload_type=event_pt)


def test_telephone_event_follows_the_chosen_codecs_clock(state: SessionState) -> None:
    offer = parse_sdp(
        offer_sdp(
            "m=audio 4000 RTP/AVP 111 0 100 101\r\na=rtpmap:111 opus/48000/2\r\n"
            "a=rtpmap:100 telephone-event/48000\r\na=rtpmap:101 telephone-event/8000"
        )
    )
    supported = [*DEFAULT_CODECS, Codec(110, "telephone-event", 48000)]

    sdp, media = answer(offer, "203.0.113.5", 30000, supported, session=state)

    assert media.telephone_event == 100
    assert [c.payload_type for c in sdp.media[0].codecs] == [111, 0, 100]


def test_telephone_event_needs_both_sides(state: SessionState) -> None:
    sdp, media = answer(parse_sdp(SIPP_OFFER), "203.0.113.5", 30000, [PCMA], session=state)
    assert media.telephone_event is None
    assert sdp.media[0].codecs == (PCMA,)

    offer = parse_sdp(offer_sdp(AUDIO_PCMU))
    sdp, media = answer(offer, "203.0.113.5", 30000, DEFAULT_CODECS, session=state)
    assert media.telephone_event is None
    assert sdp.media[0].codecs == (PCMU,)


def test_streams_we_cannot_do_are_rejected_in_place(state: SessionState) -> None:
    offer = parse_sdp(
        offer_sdp(
            "m=video 5000 RTP/AVP 31",
            AUDIO_G729,
            "m=audio 4004 RTP/SAVP 0",
            AUDIO_PCMU,
            "m=image 6000 udptl t38",
            AUDIO_PCMU,
        )
    )

    sdp, media = answer(offer, "203.0.113.5", 30000, DEFAULT_CODECS, session=state)

    assert [(m.kind, m.port) for m in sdp.media] == [
        ("video", 0),
        ("audio", 0),  # no common codec
        ("audio", 0),  # SAVP without SRTP
        ("audio", 30000),
        ("image", 0),
        ("audio", 0),  # one stream per leg
    ]
    assert sdp.media[1].codecs == (Codec(18, "G729", 8000),)  # RFC 3264 wants a format listed
    assert sdp.media[4].formats == ("t38",)
    assert media.remote_rtp == ("198.51.100.7", 4000)
    assert parse_sdp(sdp.serialize()) == sdp


def test_savp_is_answered_when_the_caller_supports_it(state: SessionState) -> None:
    offer = parse_sdp(offer_sdp("m=audio 4004 RTP/SAVP 0"))

    sdp, _ = answer(offer, "203.0.113.5", 1, [PCMU], session=state, transports=["RTP/SAVP"])

    assert (sdp.media[0].port, sdp.media[0].transport) == (1, "RTP/SAVP")


def test_no_common_codec_raises_and_leaves_the_version_alone(state: SessionState) -> None:
    make_offer("203.0.113.5", 30000, DEFAULT_CODECS, session=state)
    for body in (offer_sdp(AUDIO_G729), offer_sdp("m=audio 0 RTP/AVP 0")):
        with pytest.raises(NoCommonCodec):
            answer(parse_sdp(body), "203.0.113.5", 30000, DEFAULT_CODECS, session=state)
    assert state.version == 0


@pytest.mark.parametrize(
    ("offered", "connection", "answered"),
    [
        ("sendrecv", "198.51.100.7", "sendrecv"),
        ("sendonly", "198.51.100.7", "recvonly"),
        ("recvonly", "198.51.100.7", "sendonly"),
        ("inactive", "198.51.100.7", "inactive"),
        ("sendrecv", "0.0.0.0", "recvonly"),  # RFC 2543 hold
        ("recvonly", "0.0.0.0", "inactive"),
    ],
)
def test_direction_is_mirrored(
    state: SessionState, offered: str, connection: str, answered: str
) -> None:
    offer = parse_sdp(
        offer_sdp(f"{AUDIO_PCMU}\r\na={offered}", connection=f"c=IN IP4 {connection}")
    )

    sdp, media = answer(offer, "203.0.113.5", 30000, DEFAULT_CODECS, session=state)

    assert sdp.media[0].direction == media.direction == answered


def test_ptime_is_echoed_when_offered(state: SessionState) -> None:
    with_ptime = parse_sdp(offer_sdp(f"{AUDIO_PCMU}\r\na=ptime:30"))
    without = parse_sdp(offer_sdp(AUDIO_PCMU))

    assert answer(with_ptime, "203.0.113.5", 1, [PCMU], session=state)[0].media[0].ptime == 30
    assert answer(without, "203.0.113.5", 1, [PCMU], session=state)[1].ptime is None


def test_rtcp_mux_only_when_both_want_it(state: SessionState) -> None:
    offer = parse_sdp(BARESIP_OFFER)

    sdp, media = answer(offer, "203.0.113.5", 30000, [PCMU], session=state, rtcp_mux=True)

    assert sdp.media[0].rtcp_mux and media.rtcp_mux
    assert media.remote_rtcp == media.remote_rtp
    _, media = answer(offer, "203.0.113.5", 30000, [PCMU], session=state)
    assert not media.rtcp_mux


def test_version_moves_only_when_the_sdp_does(state: SessionState) -> None:
    first = make_offer("203.0.113.5", 30000, DEFAULT_CODECS, session=state)
    refresh = make_offer("203.0.113.5", 30000, DEFAULT_CODECS, session=state)
    held = state.hold()
    held_again = state.hold()
    resumed = state.resume()

    versions = [sdp.origin.version for sdp in (first, refresh, held, held_again, resumed)]
    assert versions == [0, 0, 1, 1, 2]
    assert {sdp.origin.session_id for sdp in (first, resumed)} == {777}
    assert held.media[0].direction == "sendonly"
    assert resumed.media[0].direction == "sendrecv"
    assert replace(resumed, origin=first.origin) == first


def test_hold_can_be_inactive_and_skips_rejected_streams(state: SessionState) -> None:
    offer = parse_sdp(offer_sdp("m=video 5000 RTP/AVP 31", AUDIO_PCMU))
    answer(offer, "203.0.113.5", 30000, [PCMU], session=state)

    held = state.hold("inactive")

    assert [(m.port, m.direction) for m in held.media] == [(0, "sendrecv"), (30000, "inactive")]
    assert held.origin.version == 1


def test_hold_needs_something_sent_first(state: SessionState) -> None:
    with pytest.raises(SdpError, match="no SDP sent"):
        state.hold()


def answer_body(*media: str, connection: str = "c=IN IP4 192.0.2.50") -> SessionDescription:
    head = ["v=0", "o=- 9 9 IN IP4 192.0.2.50", "s=-", connection, "t=0 0"]
    return parse_sdp("\r\n".join([*head, *media, ""]))


def test_apply_answer_reports_what_was_agreed(state: SessionState) -> None:
    offer = make_offer("203.0.113.5", 30000, DEFAULT_CODECS, session=state, rtcp_mux=True)
    reply = answer_body(
        "m=audio 7078 RTP/AVP 8 101\r\na=rtpmap:8 pcma/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=ptime:20"
    )

    assert apply_answer(offer, reply) == NegotiatedMedia(
        codec=Codec(8, "pcma", 8000),
        telephone_event=101,
        remote_rtp=("192.0.2.50", 7078),
        remote_rtcp=("192.0.2.50", 7079),
        direction="sendrecv",
        ptime=20,
    )
    muxed = answer_body("m=audio 7078 RTP/AVP 0\r\na=rtcp-mux")
    assert apply_answer(offer, muxed).remote_rtcp == ("192.0.2.50", 7078)


def test_apply_answer_to_hold(state: SessionState) -> None:
    make_offer("203.0.113.5", 30000, DEFAULT_CODECS, session=state)
    held = state.hold()

    assert apply_answer(held, answer_body(f"{AUDIO_PCMU}\r\na=recvonly")).direction == "sendonly"
    legacy = answer_body(AUDIO_PCMU, connection="c=IN IP4 0.0.0.0")
    assert apply_answer(held, legacy).direction == "inactive"


def test_our_answers_pass_apply_answer_validation(state: SessionState) -> None:
    offer = parse_sdp(BARESIP_OFFER)
    ours, _ = answer(offer, "203.0.113.5", 30000, DEFAULT_CODECS, session=state)

    agreed = apply_answer(offer, ours)

    assert (agreed.codec.name, agreed.telephone_event) == ("opus", 97)
    assert agreed.remote_rtp == ("203.0.113.5", 30000)


@pytest.mark.parametrize(
    ("media", "reason"),
    [
        ((AUDIO_PCMU, AUDIO_PCMU), "2 m-lines, offer had 1"),
        (("m=video 7078 RTP/AVP 31",), "is video, offered audio"),
        (("m=audio 7078 RTP/SAVP 0",), "RTP/SAVP"),
        ((AUDIO_G729,), r"G729/8000 \(PT 18\), which was not offered"),
        (("m=audio 7078 RTP/AVP 0\r\na=rtpmap:0 PCMU/16000",), "PCMU/16000"),
        (("m=audio 7078 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000",), "no voice codec"),
        (("m=audio 0 RTP/AVP 0",), "rejected every audio stream"),
    ],
)
def test_apply_answer_rejects_answers_that_do_not_fit(
    state: SessionState, media: tuple[str, ...], reason: str
) -> None:
    offer = make_offer("203.0.113.5", 30000, DEFAULT_CODECS, session=state)

    with pytest.raises(SdpError, match=reason):
        apply_answer(offer, answer_body(*media))


@pytest.mark.parametrize(
    ("answered", "agreed"),
    [
        ("recvonly", "sendonly"),
        ("inactive", "inactive"),
        ("sendrecv", "sendonly"),
        ("sendonly", "inactive"),
    ],
)
def test_apply_answer_never_grants_more_than_we_offered(
    state: SessionState, answered: str, agreed: str
) -> None:
    offer = make_offer("203.0.113.5", 30000, [PCMU], direction="sendonly", session=state)

    assert apply_answer(offer, answer_body(f"{AUDIO_PCMU}\r\na={answered}")).direction == agreed


def test_apply_answer_rejects_accepting_a_disabled_stream(state: SessionState) -> None:
    offer = parse_sdp(offer_sdp("m=video 0 RTP/AVP 31", AUDIO_PCMU))

    with pytest.raises(SdpError, match="offer had disabled it"):
        apply_answer(offer, answer_body("m=video 5000 RTP/AVP 31", AUDIO_PCMU))


def test_no_common_codec_is_an_sdp_error() -> None:
    assert issubclass(NoCommonCodec, SdpError)
