"""The softphone page in real headless Chromium against the gateway on loopback: a call from
the app answered with a click, a call placed from the page into a conference with a SIP phone
(baresip), and a tab closed mid-call. What each side heard is measured: the page with its
WebAudio analyser, the simulated phone through /pstn/1/calls/{id}/heard, baresip in its
recording. Chromium's microphone is a WAV tone of our own."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.testing.audio import dominant_frequency, read_wav
from tests.conftest import API_KEY
from tests.sip.baresip import BARESIP, Account, Baresip
from tests.webrtc.browser import chromium, needs_chromium, open_softphone, page_hears, until
from tests.webrtc.conftest import CALLER, CONFIG, DID, WebRtcWorld
from tests.webrtc.test_webrtc_calls import phone_hears

pytestmark = needs_chromium

PAGE_TONE = 660  # Chromium's fake microphone
PHONE_TONE = 1000  # the simulated phone, or baresip


def base_url(world: WebRtcWorld) -> str:
    return f"http://127.0.0.1:{world.gateway.settings.http_port}"


def props(event: dict) -> dict:
    return event["properties"]


async def phone_peak(world: WebRtcWorld, call_id: str) -> int:
    """The loudest sample of the last 0.3 s the simulated phone heard."""
    pcm, rate = read_wav((await world.api.get(f"/pstn/1/calls/{call_id}/heard")).content)
    return int(abs(pcm[-int(0.3 * rate) :].astype(int)).max())


async def test_the_page_answers_a_call_from_the_app_hears_it_and_sends_keys(
    world: WebRtcWorld, tmp_path
):
    async with chromium(tmp_path, PAGE_TONE) as browser:
        page = await open_softphone(browser, base_url(world))
        await page.fill("#identity", "alice")
        await page.fill("#display-name", "Alice")
        await page.click("summary")
        await page.fill("#api-key", API_KEY)
        await page.click("#sign-in")
        await page.locator("#presence").filter(has_text="Alice (alice)").wait_for(timeout=5000)
        assert await page.input_value("#api-key") == ""  # the key is not kept in the form

        placed = await world.api.post("/pstn/1/calls", json={"from": CALLER, "to": DID})
        parent = placed.json()["callId"]
        await world.recorder.wait_for(types=["CALL_RECEIVED"], call_id=parent)
        await world.api.put(
            f"/pstn/1/calls/{parent}/source", json={"type": "tone", "frequency": PHONE_TONE}
        )
        endpoint = {"type": "WEBRTC", "identity": "alice", "displayName": "Alice"}
        child_request = {"endpoint": endpoint, "from": "Front desk", "fromDisplayName": "Reception"}
        created = await world.api.post(
            "/calls/1/dialogs", json={"parentCallId": parent, "childCallRequest": child_request}
        )
        assert created.status_code == 201, created.text
        child = created.json()["childCall"]["id"]

        await page.locator("#answer").wait_for(state="visible", timeout=5000)
        assert await page.text_content("#state") == "Incoming call"
        assert await page.text_content("#peer") == "Reception · Front desk"
        await world.recorder.wait_for(types=["CALL_RINGING"], call_id=child)
        started = time.monotonic()
        await page.click("#answer")
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=child)
        heard = await page_hears(page, PHONE_TONE)
        print(f"answer click to the page hearing the phone: {time.monotonic() - started:.2f} s")
        print(f"page analyser: {heard:.1f} Hz")
        await phone_hears(world, parent, PAGE_TONE)
        assert await page.text_content("#state") == "In call"

        await page.click("#mute")  # the phone hears silence, then the page again
        await until(lambda: phone_peak(world, parent), lambda peak: peak == 0)
        await page.click("#mute")
        await phone_hears(world, parent, PAGE_TONE)
        changes = await world.recorder.wait_for(2, types=["CALL_MEDIA_CHANGED"], call_id=child)
        assert [props(e)["audio"]["userMuted"] for e in changes] == [True, False]

        for key in "15#":
            await page.click(f'#keypad [data-key="{key}"]')
        captured = await world.recorder.wait_for(3, types=["DTMF_CAPTURED"], call_id=child)
        assert [props(e)["dtmf"] for e in captured] == ["1", "5", "#"]

        await page.click("#hangup")
        finished = await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=child)
        log = props(finished[-1])["callLog"]
        assert (log["errorCode"]["name"], log["hangupSource"]) == ("NORMAL_HANGUP", "ENDPOINT")
        assert world.recorder.types(child) == [
            "CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", *["CALL_MEDIA_CHANGED"] * 2,
            *["DTMF_CAPTURED"] * 3, "CALL_FINISHED",
        ]  # fmt: skip
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=parent)
        assert await page.text_content("#state") == "Call ended"
        assert await page.evaluate("window.softphone.state()") == "idle"
    assert world.gateway.webrtc.peer_count == 0


@pytest.mark.skipif(BARESIP is None, reason="baresip is not on PATH")
async def test_the_page_calls_in_and_meets_a_sip_phone_in_a_conference(
    world: WebRtcWorld, tmp_path
):
    account = Account("deskphone", "unused", f"127.0.0.1:{world.gateway.settings.sip_port}",
                      regint=0)  # fmt: skip
    async with (
        Baresip.start(tmp_path / "baresip", account, record=True, tone=PHONE_TONE) as sip_phone,
        chromium(tmp_path, PAGE_TONE) as browser,
    ):
        trunk = await world.api.post(
            "/calls/1/sip-trunks",
            json={
                "type": "STATIC",
                "name": "desk",
                "channelLimit": 4,
                "billingPackage": {"packageType": "METERED"},
                "destinationHosts": [f"127.0.0.1:{sip_phone.sip_port}"],
            },
        )
        assert trunk.status_code == 202, trunk.text
        page = await open_softphone(browser, base_url(world), await world.token("bob"))
        await page.fill("#number", "conference")
        await page.click("#call")
        received = await world.recorder.wait_for(types=["CALL_RECEIVED"])
        call = props(received[-1])["call"]
        assert call["endpoint"]["identity"] == "bob" and call["to"] == "conference"
        webrtc = call["id"]
        answered = await world.api.post(f"/calls/1/calls/{webrtc}/answer", json={})
        assert answered.status_code == 200, answered.text
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=webrtc)
        await page.locator("#state").filter(has_text="In call").wait_for(timeout=5000)

        sip_endpoint = {"type": "SIP", "username": "deskphone", "sipTrunkId": trunk.json()["id"]}
        dialled = await world.api.post(
            "/calls/1/calls",
            json={"endpoint": sip_endpoint, "from": CALLER, "callsConfigurationId": CONFIG},
        )
        assert dialled.status_code == 201, dialled.text
        sip = dialled.json()["id"]
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=sip)
        connected = await world.api.post(
            "/calls/1/connect", json={"callIds": [webrtc, sip], "conferenceRequest": {}}
        )
        assert connected.status_code == 200, connected.text
        conference = connected.json()["id"]

        await page_hears(page, PHONE_TONE)
        ticks = world.gateway.media.ticks
        async with asyncio.timeout(5):  # 1 s more in the conference for baresip's recording
            while world.gateway.media.ticks < ticks + 50:
                await asyncio.sleep(0.02)
        await world.api.post(f"/calls/1/conferences/{conference}/hangup")
        await sip_phone.wait_event("CALL_CLOSED")
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=webrtc)
        await page.locator("#state").filter(has_text="Call ended").wait_for(timeout=5000)
    recordings = sorted((tmp_path / "baresip" / "recordings").glob("*-dec.wav"))
    assert recordings, "baresip recorded nothing"
    pcm, rate = read_wav(recordings[-1])
    assert abs(dominant_frequency(pcm[-int(0.8 * rate) :], rate) - PAGE_TONE) < 10
    assert world.gateway.webrtc.peer_count == 0


MARKUP = '<b>Boss</b><img src="x" onerror="window.pwned=1">'


async def test_closing_the_tab_mid_call_ends_the_leg(world: WebRtcWorld, tmp_path):
    async with chromium(tmp_path, PAGE_TONE) as browser:
        page = await open_softphone(browser, base_url(world), await world.token("carol"))
        created = await world.api.post(
            "/calls/1/calls",
            json={
                "endpoint": {"type": "WEBRTC", "identity": "carol"},
                "callsConfigurationId": CONFIG,
                "fromDisplayName": MARKUP,
            },
        )
        call_id = created.json()["id"]
        await page.locator("#answer").wait_for(state="visible", timeout=5000)
        assert MARKUP in await page.text_content("#peer")  # shown as text, never as HTML
        assert await page.locator("#peer img, #peer b").count() == 0
        await page.click("#answer")
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
        started = time.monotonic()
        await page.close()
        finished = await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
        print(f"tab closed to CALL_FINISHED: {time.monotonic() - started:.2f} s")
        assert time.monotonic() - started < 3
        log = props(finished[-1])["callLog"]
        assert log["errorCode"]["name"] == "NORMAL_HANGUP"
        assert world.recorder.types(call_id) == [
            "CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_FINISHED"
        ]  # fmt: skip
    assert world.gateway.webrtc.peer_count == 0


HELD_MICROPHONE = """() => {
  const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  window.opened = [];
  window.grant = null;
  const granted = new Promise((resolve) => (window.grant = resolve));
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    await granted;  // as a permission prompt would hold it
    const stream = await open(constraints);
    window.opened.push(stream);
    return stream;
  };
}"""


async def test_hanging_up_while_the_microphone_opens_places_no_call(world: WebRtcWorld, tmp_path):
    async with chromium(tmp_path, PAGE_TONE) as browser:
        page = await open_softphone(browser, base_url(world), await world.token("dora"))
        await page.evaluate(HELD_MICROPHONE)
        await page.fill("#number", "support")
        await page.click("#call")
        await page.locator("#hangup").wait_for(state="visible", timeout=5000)
        await page.click("#hangup")
        await page.evaluate("window.grant()")
        await page.locator("#peer").filter(has_text="hung up").wait_for(timeout=5000)
        assert await page.evaluate("window.softphone.state()") == "idle"
        tracks = await page.evaluate(
            "window.opened.flatMap((s) => s.getTracks().map((t) => t.readyState))"
        )
        assert tracks == ["ended"], "the microphone was left open"
        assert "CALL_RECEIVED" not in world.recorder.types()
        assert world.gateway.calls.live_count == 0
