"""RFC 4733 key presses from WebRTC peers: telephone-event negotiated both ways, events sent
in the aiortc test peer's own RTP stream (in place of its audio, as libwebrtc sends them)
arrive as DTMF_CAPTURED, each press once, long presses and retransmitted end packets
included; the audio plays on after them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiortc
import aiortc.codecs
import pytest
from aiortc import RTCRtpSender
from aiortc.exceptions import OperationError

from gateway.testing.webrtc_peer import WebRtcTestPeer
from tests.webrtc.conftest import WebRtcWorld
from tests.webrtc.test_webrtc_calls import phone_hears, props
from trunks.webrtc import telephone_event
from trunks.webrtc.media import OutboundTrack
from trunks.webrtc.peer import IceSettings, new_peer_connection


def rtpmaps(sdp: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in sdp.splitlines() if line.startswith("a=rtpmap:")]


async def quiet_for(world: WebRtcWorld, ticks: int) -> None:
    """Let ``ticks`` media ticks (20 ms each) pass: time for a duplicate to show up."""
    start = world.gateway.media.ticks
    async with asyncio.timeout(ticks * 0.02 + 5):
        while world.gateway.media.ticks < start + ticks:
            await asyncio.sleep(0.02)


async def test_key_presses_in_the_peers_rtp_are_captured_once_each(world):
    async with WebRtcTestPeer(world.ws_url, await world.token("rita"), tone_hz=700) as peer:
        parent, child = await world.dialog_to("rita")
        incoming = await peer.expect("incoming")
        offered = rtpmaps(incoming["sdp"])
        assert offered == [
            "opus/48000/2", "PCMU/8000", "PCMA/8000",
            "telephone-event/48000", "telephone-event/8000",
        ]  # fmt: skip
        await peer.answer(incoming)
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=parent)
        assert peer.telephone_event() == (110, 48000)  # paired with Opus
        await phone_hears(world, parent, 700)

        await peer.press_keys("1*9#")
        # 59 packets and 3 end packets, one press; longer than the 1 s media timeout, which
        # it does not trip (the audio it replaced is heard as silence, not as nothing).
        await peer.press_keys("5", duration_ms=1200)
        await peer.press_keys("55", gap_ms=20)  # the same key twice is two presses
        await world.recorder.wait_for(7, types=["DTMF_CAPTURED"], call_id=child)
        await quiet_for(world, 25)
        captured = [e for e in world.recorder.events(child) if e["type"] == "DTMF_CAPTURED"]
        assert [props(e)["dtmf"] for e in captured] == ["1", "*", "9", "#", "5", "5", "5"]
        assert not [m for m in peer.messages if m["type"] == "error"]

        await phone_hears(world, parent, 700)  # the audio the keys took the place of is back
        await peer.hangup()
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=child)
    assert world.gateway.webrtc.peer_count == 0


async def test_a_peer_calling_in_gets_telephone_event_in_the_answer(world):
    async with WebRtcTestPeer(world.ws_url, await world.token("sam"), tone_hz=500) as peer:
        call_id = await peer.call("ivr")
        await world.recorder.wait_for(types=["CALL_RECEIVED"], call_id=call_id)
        await world.api.post(f"/calls/1/calls/{call_id}/answer", json={})
        answered = await peer.expect("answered")
        assert "telephone-event/48000" in rtpmaps(answered["sdp"])
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
        await peer.wait_heard(0.1, level=-1)  # media flows
        await peer.press_keys("0A")
        captured = await world.recorder.wait_for(2, types=["DTMF_CAPTURED"], call_id=call_id)
        assert [props(e)["dtmf"] for e in captured] == ["0", "A"]
        await peer.hangup()
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
    assert world.gateway.webrtc.peer_count == 0


async def answer_to(offered: Callable[[list[Any]], list[Any]]) -> list[str]:
    """The gateway's answer (its rtpmaps) to an offer of ``offered`` (of the capabilities)."""
    offerer, answerer = new_peer_connection(IceSettings()), new_peer_connection(IceSettings())
    try:
        codecs = RTCRtpSender.getCapabilities("audio").codecs
        offerer.addTransceiver(OutboundTrack()).setCodecPreferences(offered(codecs))
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        answerer.addTrack(OutboundTrack())
        await answerer.setLocalDescription(await answerer.createAnswer())
        return rtpmaps(answerer.localDescription.sdp)
    finally:
        await offerer.close()
        await answerer.close()


def events(codecs: list[Any]) -> list[Any]:
    return [c for c in codecs if telephone_event.is_telephone_event(c)]


async def test_telephone_event_is_never_the_codec_sent_with():
    """aiortc sends with the first common codec: an offer listing events first is answered
    voice first; events alone are no common codec (aiortc could not encode them)."""
    pcmu_last = await answer_to(
        lambda cs: events(cs) + [c for c in cs if c.mimeType == "audio/PCMU"]
    )
    assert pcmu_last == ["PCMU/8000", "telephone-event/48000", "telephone-event/8000"]
    with pytest.raises(OperationError, match="audio description"):
        await answer_to(events)


@pytest.mark.parametrize("mime_type", sorted(telephone_event.DECODED))
def test_the_silence_for_an_event_is_in_the_decoders_format(mime_type: str):
    codec = next(c for c in aiortc.codecs.CODECS["audio"] if c.mimeType.lower() == mime_type)
    decoder = aiortc.codecs.get_decoder(codec).codec
    rate, layout = telephone_event.DECODED[mime_type]
    assert (decoder.sample_rate, decoder.layout.name) == (rate, layout)


def test_an_untested_aiortc_fails_loudly(monkeypatch):
    monkeypatch.setattr(telephone_event, "_installed", False)
    monkeypatch.setattr(aiortc, "__version__", "9.0.0")
    with pytest.raises(ImportError, match=r"not 9\.0\.0"):
        telephone_event.install()
