"""Codecs: G.711 bit-exact and batched, G.722/Opus keep a tone, RFC 4733 events, the registry."""

from __future__ import annotations

import warnings

import av
import numpy as np
import pytest

from gateway.media.codecs import (
    G722,
    PCMA,
    PCMU,
    CodecUnavailable,
    Opus,
    codec_for,
    decode_alaw,
    decode_ulaw,
    encode_alaw,
    encode_ulaw,
)
from gateway.media.dtmf_event import (
    DIGITS,
    EVENT_CODES,
    TelephoneEvent,
    digit_packets,
    pack_event,
    parse_event,
)
from gateway.media.frame import samples_per_frame
from gateway.testing.audio import dominant_frequency, rms_dbfs, tone

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)
LAWS = {"ulaw": (encode_ulaw, decode_ulaw), "alaw": (encode_alaw, decode_alaw)}


@pytest.fixture(scope="module")
def audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip(
            "audioop", reason="audioop (removed in Python 3.13) is the bit-exact reference"
        )


# --- G.711 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("law", LAWS)
def test_g711_is_bit_exact_with_audioop_for_every_input(audioop, law: str) -> None:
    encode, decode = LAWS[law]
    lin2x, x2lin = getattr(audioop, f"lin2{law}"), getattr(audioop, f"{law}2lin")
    assert np.array_equal(encode(ALL_PCM), np.frombuffer(lin2x(ALL_PCM.tobytes(), 2), np.uint8))
    assert np.array_equal(decode(ALL_CODES), np.frombuffer(x2lin(ALL_CODES.tobytes(), 2), np.int16))


@pytest.mark.parametrize(
    ("encode", "pcm", "code"),
    [
        (encode_ulaw, 0, 0xFF),
        (encode_ulaw, -1, 0x7E),  # Sun/audioop negate in two's complement (G.191 gives 0x7F)
        (encode_ulaw, 32767, 0x80),
        (encode_ulaw, -32768, 0x00),
        (encode_alaw, 0, 0xD5),
        (encode_alaw, -1, 0x55),
        (encode_alaw, 32767, 0xAA),
        (encode_alaw, -32768, 0x2A),
    ],
)
def test_g711_known_codes(encode, pcm: int, code: int) -> None:
    assert encode(np.array([pcm], dtype=np.int16))[0] == code


@pytest.mark.parametrize(
    ("decode", "code", "pcm"),
    [
        (decode_ulaw, 0xFF, 0),
        (decode_ulaw, 0x7F, 0),
        (decode_ulaw, 0x80, 32124),
        (decode_ulaw, 0x00, -32124),
        (decode_alaw, 0xD5, 8),
        (decode_alaw, 0x55, -8),
        (decode_alaw, 0xAA, 32256),
        (decode_alaw, 0x2A, -32256),
    ],
)
def test_g711_known_levels(decode, code: int, pcm: int) -> None:
    assert decode(np.array([code], dtype=np.uint8))[0] == pcm


@pytest.mark.parametrize("law", LAWS)
def test_g711_round_trip_error_is_within_the_segment_step(law: str) -> None:
    encode, decode = LAWS[law]
    decoded = decode(encode(ALL_PCM)).astype(np.int32)
    magnitude = np.abs(ALL_PCM.astype(np.int32))
    in_range = magnitude <= np.abs(decode(ALL_CODES).astype(np.int32)).max()
    error = np.abs(decoded - ALL_PCM)
    # Log companding: the error grows with the level, 1/32 of it plus the finest step.
    assert np.all(error[in_range] <= magnitude[in_range] / 32 + 8)
    assert error[~in_range].max(initial=0) <= 644  # clipped beyond the largest code


@pytest.mark.parametrize("law", LAWS)
def test_g711_codes_survive_decode_then_encode(law: str) -> None:
    encode, decode = LAWS[law]
    again = encode(decode(ALL_CODES))
    changed = np.nonzero(again != ALL_CODES)[0].tolist()
    assert changed == ([0x7F] if law == "ulaw" else [])  # µ-law's "negative zero" becomes +0


@pytest.mark.parametrize("law", LAWS)
def test_g711_keeps_shape_and_dtype(law: str) -> None:
    encode, decode = LAWS[law]
    pcm = np.random.default_rng(1).integers(-32768, 32768, (2, 3, 160)).astype(np.int16)
    codes = encode(pcm)
    assert codes.shape == pcm.shape and codes.dtype == np.uint8
    assert decode(codes).shape == pcm.shape and decode(codes).dtype == np.int16


def test_g711_tone_keeps_35_db_signal_to_noise() -> None:
    sent = tone(1000, 1.0, amplitude=0.3).astype(np.float64)
    for encode, decode in LAWS.values():
        noise = decode(encode(sent.astype(np.int16))) - sent
        assert 10 * np.log10(np.mean(sent**2) / np.mean(noise**2)) > 35


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_g711_batch_matches_row_by_row(codec) -> None:
    frames = np.random.default_rng(2).integers(-32768, 32768, (7, 160)).astype(np.int16)
    payloads = codec.encode_batch(frames)
    assert payloads == [codec.encode(row) for row in frames]
    assert all(len(p) == 160 for p in payloads)
    decoded = codec.decode_batch(payloads)
    assert decoded.shape == (7, 160) and decoded.dtype == np.int16
    assert np.array_equal(decoded, np.stack([codec.decode(p) for p in payloads]))


@pytest.mark.parametrize("count", [0, 1, 3, 1000])
def test_g711_decode_batch_of_any_number_of_payloads(count: int) -> None:
    payloads = [bytes([i % 256]) * 160 for i in range(count)]
    decoded = PCMU.decode_batch(payloads)
    assert decoded.shape == (count, 160) and decoded.dtype == np.int16
    if count:
        assert np.array_equal(decoded[:, 0], decode_ulaw(np.arange(count, dtype=np.uint8)))


def test_g711_decode_batch_takes_other_packet_times_but_not_mixed_ones() -> None:
    assert PCMA.decode_batch([b"\xd5" * 80] * 4).shape == (4, 80)  # 10 ms
    with pytest.raises(ValueError, match="one length"):
        PCMA.decode_batch([b"\xd5" * 160, b"\xd5" * 80])


def test_g711_is_shared_and_stateless() -> None:
    assert PCMU.new_encoder() is PCMU and PCMU.new_decoder() is PCMU
    assert codec_for("pcmu", 8000) is PCMU and codec_for("PCMA", 8000) is PCMA


# --- G.722 and Opus ---------------------------------------------------------------------------

STATEFUL = {
    "g722": lambda: codec_for("G722", 8000),
    "opus48k": lambda: codec_for("opus", 48000, 2),
    "opus16k": lambda: codec_for("OPUS", 48000, 2, sample_rate=16000),
}


def round_trip(codec, pcm: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    encoder, decoder = codec.new_encoder(), codec.new_decoder()
    size = samples_per_frame(codec.sample_rate)
    payloads = [encoder.encode(frame) for frame in pcm.reshape(-1, size)]
    return payloads, np.concatenate([decoder.decode(p) for p in payloads])


@pytest.mark.parametrize("make", STATEFUL.values(), ids=STATEFUL)
def test_stateful_codec_round_trip_keeps_a_1khz_tone(make) -> None:
    codec = make()
    sent = tone(1000, 1.0, codec.sample_rate, amplitude=0.3)
    payloads, heard = round_trip(codec, sent)
    assert len(payloads) == 50 and len(heard) == len(sent)
    settled = heard[codec.sample_rate // 10 :]  # past the codec's delay and warm-up
    assert abs(dominant_frequency(settled, codec.sample_rate) - 1000) < 5
    assert abs(rms_dbfs(settled) - rms_dbfs(sent)) < 2


def test_g722_format() -> None:
    codec = codec_for("g722", 8000)
    assert isinstance(codec, G722)
    assert (codec.payload_type, codec.clock_rate, codec.sample_rate) == (9, 8000, 16000)
    assert codec.timestamp_step == 160  # the 8 kHz RTP clock, though it samples at 16 kHz
    payloads, _ = round_trip(codec, tone(1000, 0.1, 16000))
    assert {len(p) for p in payloads} == {160}  # 64 kbit/s


def test_opus_format() -> None:
    codec = codec_for("Opus", 48000, 2, payload_type=96)
    assert isinstance(codec, Opus)
    assert (codec.payload_type, codec.clock_rate, codec.channels) == (96, 48000, 2)
    assert codec.timestamp_step == 960
    assert codec_for("opus", 48000).payload_type == 111  # the conventional default
    payloads, _ = round_trip(codec, tone(1000, 0.2, 48000))
    assert all(0 < len(p) < 200 for p in payloads)  # about 32 kbit/s


def test_opus_decoder_takes_stereo_packets() -> None:
    """Peers may send stereo though we send mono; we hear the downmix."""
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format = 48000, "stereo", "s16"
    decoder = Opus().new_decoder()
    sent = tone(1000, 0.4, 48000)
    heard = []
    for i, frame in enumerate(sent.reshape(-1, 960)):
        stereo = av.AudioFrame.from_ndarray(
            np.repeat(frame, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        stereo.sample_rate, stereo.pts = 48000, i * 960
        heard += [decoder.decode(bytes(packet)) for packet in ctx.encode(stereo)]
    assert {len(h) for h in heard} == {960}
    assert abs(dominant_frequency(np.concatenate(heard)[4800:], 48000) - 1000) < 5


@pytest.mark.parametrize("make", STATEFUL.values(), ids=STATEFUL)
def test_stateful_batches_run_each_legs_own_coder(make) -> None:
    codec = make()
    size = samples_per_frame(codec.sample_rate)
    frames = np.stack([tone(f, 0.02, codec.sample_rate) for f in (500, 1000, 1500)])
    assert frames.shape == (3, size)
    with pytest.raises(ValueError, match="per leg"):
        codec.encode_batch(frames)
    encoders = [codec.new_encoder() for _ in frames]
    payloads = codec.encode_batch(frames, encoders)
    assert payloads == [codec.new_encoder().encode(row) for row in frames]
    decoded = codec.decode_batch(payloads, [codec.new_decoder() for _ in payloads])
    assert decoded.shape == (3, size) and decoded.dtype == np.int16
    assert codec.decode_batch([], []).shape == (0, size)
    with pytest.raises(ValueError, match="20 ms"):
        encoders[0].encode(frames[0][: size // 2])


def test_a_codec_missing_from_the_ffmpeg_build_is_named(monkeypatch) -> None:
    monkeypatch.setattr(av, "codecs_available", frozenset())
    with pytest.raises(CodecUnavailable, match="libopus encoder"):
        Opus().new_encoder()
    with pytest.raises(CodecUnavailable, match="g722 decoder"):
        G722().new_decoder()


@pytest.mark.parametrize(
    ("name", "rate", "channels"),
    [("G729", 8000, 1), ("PCMU", 16000, 1), ("PCMA", 8000, 2), ("opus", 16000, 2)],
)
def test_registry_refuses_unknown_formats(name: str, rate: int, channels: int) -> None:
    with pytest.raises(CodecUnavailable, match=f"{name}/{rate}/{channels}"):
        codec_for(name, rate, channels)


# --- RFC 4733 telephone-event -----------------------------------------------------------------


def test_event_codes_cover_the_sixteen_keys() -> None:
    assert [EVENT_CODES[key] for key in "0123456789*#ABCD"] == list(range(16))
    assert len(EVENT_CODES) == 16 and DIGITS[11] == "#"
    assert TelephoneEvent(15).digit == "D" and TelephoneEvent(32).digit is None


def test_event_payload_layout_and_round_trip() -> None:
    event = TelephoneEvent(event=1, end=True, volume=10, duration=800)
    assert pack_event(event) == b"\x01\x8a\x03\x20"
    assert parse_event(pack_event(event)) == event
    for sample in (TelephoneEvent(11), TelephoneEvent(255, False, 63, 0xFFFF)):
        assert parse_event(pack_event(sample)) == sample


def test_event_parse_ignores_the_reserved_bit_and_trailing_bytes() -> None:
    assert parse_event(b"\x05\x4a\x00\xa0extra") == TelephoneEvent(5, False, 10, 160)


@pytest.mark.parametrize(
    "bad",
    [TelephoneEvent(256), TelephoneEvent(1, volume=64), TelephoneEvent(1, duration=0x10000)],
)
def test_event_pack_rejects_values_that_do_not_fit(bad: TelephoneEvent) -> None:
    with pytest.raises(ValueError):
        pack_event(bad)


def test_event_parse_rejects_a_short_payload() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        parse_event(b"\x01\x8a\x03")


def test_digit_packets_for_a_100ms_key_press() -> None:
    packets = digit_packets("5", 100)
    events = [parse_event(p.payload) for p in packets]
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert [p.send_offset for p in packets] == [160, 320, 480, 640, 800, 960, 1120]
    assert {(e.event, e.volume) for e in events} == {(5, 10)}


def test_digit_packets_follow_the_clock_and_options() -> None:
    packets = digit_packets("a", 60, clock_rate=48000, volume=20, end_repeats=2)
    events = [parse_event(p.payload) for p in packets]
    assert [e.duration for e in events] == [960, 1920, 2880, 2880]
    assert {(e.event, e.volume) for e in events} == {(12, 20)}


def test_a_press_shorter_than_a_packet_is_only_marked_end_packets() -> None:
    packets = digit_packets("#", 10)
    assert [p.marker for p in packets] == [True, False, False]
    assert {parse_event(p.payload) for p in packets} == {TelephoneEvent(11, True, 10, 80)}


@pytest.mark.parametrize(("digit", "ms"), [("E", 100), ("12", 100), ("1", 0)])
def test_digit_packets_reject_bad_input(digit: str, ms: int) -> None:
    with pytest.raises(ValueError):
        digit_packets(digit, ms)
