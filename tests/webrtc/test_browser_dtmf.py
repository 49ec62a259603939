"""The softphone's keypad in real headless Chromium: keys go as RFC 4733 events in the call's
audio (Chromium's RTCDTMFSender, telephone-event negotiated with the gateway's aiortc peer),
not as ``dtmf`` signalling messages, and arrive as DTMF_CAPTURED, each once."""

from __future__ import annotations

from typing import Any

from tests.webrtc.browser import chromium, needs_chromium, open_softphone
from tests.webrtc.conftest import WebRtcWorld
from tests.webrtc.test_browser import PAGE_TONE, base_url, phone_hears, props
from tests.webrtc.test_webrtc_dtmf import rtpmaps

pytestmark = needs_chromium


def messages_from_pages(world: WebRtcWorld) -> list[dict[str, Any]]:
    """Every signalling message the gateway gets from now on, as it got it."""
    signalling = world.gateway.webrtc_signalling
    handle = signalling.on_message
    assert handle is not None
    received: list[dict[str, Any]] = []

    async def recording(socket: Any, message: dict[str, Any]) -> None:
        received.append(message)
        await handle(socket, message)

    signalling.on_message = recording
    return received


CHROMIUMS_OFFER = """async () => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("audio");
  const offer = await pc.createOffer();
  pc.close();
  return offer.sdp;
}"""


async def test_the_keypad_sends_rfc_4733_events(world: WebRtcWorld, tmp_path):
    received = messages_from_pages(world)
    async with chromium(tmp_path, PAGE_TONE) as browser:
        page = await open_softphone(browser, base_url(world), await world.token("tess"))
        offer = await page.evaluate(CHROMIUMS_OFFER)
        assert {"telephone-event/48000", "telephone-event/8000"} <= set(rtpmaps(offer))
        parent, call_id = await world.dialog_to("tess")
        await page.locator("#answer").wait_for(state="visible", timeout=5000)
        await page.click("#answer")
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
        answer = next(m for m in received if m["type"] == "answer")
        assert {"telephone-event/48000", "telephone-event/8000"} <= set(rtpmaps(answer["sdp"]))
        await page.locator("#state").filter(has_text="In call").wait_for(timeout=5000)
        # A function, not an expression: Playwright polls an expression with eval(), which the
        # page's CSP (no 'unsafe-eval') refuses once the first look is false.
        can_insert = "() => window.softphone.client._dtmfSender() !== null"
        await page.wait_for_function(can_insert, timeout=5000)  # DTLS up, events negotiated

        for key in "3#7":
            await page.click(f'#keypad [data-key="{key}"]')
        captured = await world.recorder.wait_for(3, types=["DTMF_CAPTURED"], call_id=call_id)
        assert [props(e)["dtmf"] for e in captured] == ["3", "#", "7"]
        assert await page.evaluate("window.softphone.client.sendDtmf('9')") == "rtp"
        captured = await world.recorder.wait_for(4, types=["DTMF_CAPTURED"], call_id=call_id)
        assert props(captured[-1])["dtmf"] == "9"
        signalled = [m for m in received if m["type"] == "dtmf"]
        assert signalled == [], "keys went as dtmf messages, not RFC 4733"
        await phone_hears(world, parent, PAGE_TONE)  # the page's audio plays on after the keys

        await page.click("#hangup")
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
        assert world.recorder.types(call_id).count("DTMF_CAPTURED") == 4
    assert world.gateway.webrtc.peer_count == 0
