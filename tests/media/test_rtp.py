"""RTP headers, sequence and timestamp arithmetic, and RTCP reports."""

from __future__ import annotations

import struct

import pytest

from gateway.media.rtcp import (
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    SenderReport,
    SourceDescription,
    build_rr,
    build_sr,
    ntp_middle,
    ntp_timestamp,
    parse_rtcp,
)
from gateway.media.rtp import (
    RtpHeader,
    SequenceTracker,
    build_rtp,
    is_rtcp,
    parse_rtp,
    seq_newer,
    ts_diff,
)


def test_build_parse_round_trip() -> None:
    data = build_rtp(8, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\x55" * 160, marker=True)
    assert len(data) == 172
    header, payload = parse_rtp(data)
    assert header == RtpHeader(True, 8, 65535, 0xFFFFFFFF, 0xDEADBEEF)
    assert payload == b"\x55" * 160


def test_build_wraps_sequence_and_timestamp() -> None:
    header, _ = parse_rtp(build_rtp(0, 65536 + 3, (1 << 32) + 7, 1, b""))
    assert (header.marker, header.sequence, header.timestamp) == (False, 3, 7)


def packet(first: int, rest: bytes, payload: bytes = b"abcd") -> bytes:
    return bytes((first, 0)) + struct.pack("!HII", 1, 2, 3) + rest + payload


def test_csrcs_extension_and_padding_are_skipped() -> None:
    csrcs = struct.pack("!II", 10, 11)
    extension = struct.pack("!HH", 0xBEDE, 2) + b"\0" * 8
    padded = packet(0x80 | 0x20 | 0x10 | 2, csrcs + extension, b"voice" + b"\0\0\x03")
    header, payload = parse_rtp(padded)
    assert payload == b"voice"
    assert header.ssrc == 3


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00\x00",
        build_rtp(0, 1, 2, 3, b"x")[:11],
        bytes((0x40,)) + build_rtp(0, 1, 2, 3, b"x")[1:],  # version 1
        packet(0xA0, b"", b"ab\x09"),  # padding larger than the payload
        packet(0xA0, b"", b"ab\x00"),  # a padding count of zero
        packet(0x90, struct.pack("!HH", 0, 5) + b"\0" * 4),  # extension length overrun
        packet(0x90, b"\0\0"),  # extension header cut short
        packet(0x83, struct.pack("!II", 1, 2), b""),  # CSRC count overrun
    ],
)
def test_malformed_packets_are_rejected(data: bytes) -> None:
    assert parse_rtp(data) is None


def test_rtcp_is_told_from_rtp_on_a_muxed_port() -> None:
    assert not is_rtcp(build_rtp(0, 1, 2, 3, b"x", marker=True))
    assert is_rtcp(build_rr(ReceiverReport(1), "a"))


def test_seq_newer_across_the_wrap() -> None:
    assert seq_newer(0, 65535)
    assert seq_newer(5, 65530)
    assert not seq_newer(65535, 0)
    assert not seq_newer(7, 7)
    assert seq_newer(100, 99)


def test_timestamp_difference_across_the_wrap() -> None:
    assert ts_diff(80, 0xFFFFFFB0) == 160
    assert ts_diff(0xFFFFFFB0, 80) == -160
    assert ts_diff(1000, 840) == 160


def test_extended_sequence_counts_cycles() -> None:
    tracker = SequenceTracker(65533, min_sequential=1)
    extended = [tracker.update(s) for s in (65533, 65534, 65535, 0, 1, 65535, 2)]
    assert extended == [65533, 65534, 65535, 65536, 65537, 65535, 65538]
    assert tracker.cycles == 1 << 16
    assert tracker.extended_max == 65538


def test_probation_and_restart_after_a_jump() -> None:
    tracker = SequenceTracker(10)  # RFC default: two sequential packets before valid
    assert tracker.update(10) is None
    assert tracker.update(11) == 11
    assert tracker.update(20000) is None  # a jump: maybe a stray
    assert tracker.update(20001) == 20001  # two in a row: the sender restarted
    assert tracker.base_seq == 20001


def test_jitter_matches_the_rfc_formula() -> None:
    rate = 8000
    stats = ReceptionStats(1, 0, rate)
    delays = [0.0, 0.005, 0.030, 0.002, 0.0, 0.040, 0.010, 0.012, 0.0, 0.020]
    expected = 0.0
    previous_transit = None
    for i, delay in enumerate(delays):
        ts = (0xFFFFFF00 + i * 160) & 0xFFFFFFFF  # crosses the timestamp wrap
        arrival = 100.0 + i * 0.020 + delay
        stats.record(i, ts, arrival)
        # A.8 in plain arithmetic, timestamps unwrapped.
        transit = arrival * rate - (0xFFFFFF00 + i * 160)
        if previous_transit is not None:
            expected += (abs(transit - previous_transit) - expected) / 16
        previous_transit = transit
    assert stats.jitter == pytest.approx(expected)
    assert stats.jitter > 0


def test_loss_statistics_and_report_block() -> None:
    stats = ReceptionStats(0xABC, 65530, 8000)
    for seq in [65530, 65531, 65533, 65535, 0, 1, 3]:  # 3 of 10 lost, across the wrap
        stats.record(seq, seq * 160, 0.0)
    stats.sender_report_received(0x1111_2222_3333_4444, arrival=10.0)
    block = stats.report_block(now=10.5)
    assert block.ssrc == 0xABC
    assert block.highest_seq == 65536 + 3
    assert block.cumulative_lost == 3
    assert block.fraction_lost == (3 << 8) // 10
    assert block.lsr == 0x2222_3333
    assert block.dlsr == 32768
    again = stats.report_block(now=11.0)  # nothing new: nothing lost in the interval
    assert again.fraction_lost == 0
    assert again.cumulative_lost == 3


def test_sender_report_round_trip() -> None:
    block = ReportBlock(7, 25, -3, 70000, 42, 0x12345678, 6553)
    report = SenderReport(0xCAFE, ntp_timestamp(1_700_000_000.25), 123456, 50, 8000, (block,))
    data = build_sr(report, "gw@10.0.0.1")
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == [report, SourceDescription(0xCAFE, "gw@10.0.0.1")]


def test_receiver_report_round_trip() -> None:
    report = ReceiverReport(9, (ReportBlock(7, 0, 0x7FFFFF, 1, 0, 0, 0),))
    assert parse_rtcp(build_rr(report, "x")) == [report, SourceDescription(9, "x")]
    empty = ReceiverReport(9)
    assert parse_rtcp(build_rr(empty, "abc")) == [empty, SourceDescription(9, "abc")]


def test_malformed_rtcp_is_rejected() -> None:
    data = build_sr(SenderReport(1, 0, 0, 0, 0, (ReportBlock(1, 0, 0, 0, 0, 0, 0),)), "x")
    assert parse_rtcp(data[:-4]) is None  # the SDES length overruns
    assert parse_rtcp(data[:30]) is None
    assert parse_rtcp(bytes((0x40,)) + data[1:]) is None


def test_ntp_middle_bits() -> None:
    ntp = ntp_timestamp(0.5)  # 1970-01-01T00:00:00.5
    assert ntp >> 32 == 2208988800
    assert ntp & 0xFFFFFFFF == 1 << 31
    assert ntp_middle(ntp) == (2208988800 & 0xFFFF) << 16 | 0x8000
