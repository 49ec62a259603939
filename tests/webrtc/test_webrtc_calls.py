"""WebRTC legs with the aiortc test peer over real loopback ICE/DTLS-SRTP: calls to an
identity, calls from it, audio both ways with a simulated phone, the signalling's errors."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from gateway.testing.audio import dominant_frequency, read_wav, tone, tone_level
from gateway.testing.webrtc_peer import WebRtcTestPeer
from tests.test_actions import wav_bytes
from tests.webrtc.conftest import CALLER, CONFIG, DID, PHONE, WebRtcWorld


async def phone_heard(world: WebRtcWorld, call_id: str, seconds: float):
    pcm, rate = read_wav((await world.api.get(f"/pstn/1/calls/{call_id}/heard")).content)
    assert rate == 8000
    return pcm[-int(seconds * rate) :]


async def phone_hears(world: WebRtcWorld, call_id: str, hz: float) -> None:
    """Until the last 0.3 s the simulated phone heard is a tone of ``hz`` (nothing heard yet,
    or too little, is not yet)."""
    async with asyncio.timeout(5):
        while True:
            heard = await phone_heard(world, call_id, 0.3)
            if len(heard) == 2400 and abs(dominant_frequency(heard, 8000) - hz) < 10:
                return
            await asyncio.sleep(0.05)


async def test_a_phone_and_a_webrtc_peer_in_a_dialog_hear_each_other(world: WebRtcWorld):
    async with WebRtcTestPeer(world.ws_url, await world.token("alice"), tone_hz=440) as peer:
        await peer.expect("registered")
        placed = await world.api.post("/pstn/1/calls", json={"from": CALLER, "to": DID})
        parent = placed.json()["callId"]
        await world.recorder.wait_for(types=["CALL_RECEIVED"], call_id=parent)
        started = time.monotonic()
        created = await world.api.post(
            "/calls/1/dialogs",
            json={
                "parentCallId": parent,
                "childCallRequest": {
                    "endpoint": {"type": "WEBRTC", "identity": "alice", "displayName": "Alice"},
                    "from": "Front desk",
                    "fromDisplayName": "Front Desk",
                },
            },
        )
        assert created.status_code == 201, created.text
        child = created.json()["childCall"]["id"]
        incoming = await peer.expect("incoming")
        assert incoming["callId"] == child
        assert incoming["fromDisplayName"] == "Front Desk"
        await peer.answer(incoming)
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=parent)
        print(f"set-up (dialog request to CALL_ESTABLISHED): {time.monotonic() - started:.3f} s")
        await peer.wait_heard(0.2, level=-1)  # media flows (silence)
        tone_from = asyncio.get_running_loop().time()
        await world.api.put(
            f"/pstn/1/calls/{parent}/source", json={"type": "tone", "frequency": 1000}
        )
        await peer.wait_heard(1.0)
        first = peer.first_heard_after(tone_from)
        assert first is not None
        print(f"phone tone to the peer's ear: {(first - tone_from) * 1000:.0f} ms")
        assert abs(dominant_frequency(peer.heard_audio(0.5), 8000) - 1000) < 10
        at_phone = await phone_heard(world, parent, 0.5)
        assert abs(dominant_frequency(at_phone, 8000) - 440) < 10
        await world.api.post(f"/calls/1/calls/{child}/hangup", json={})
        hangup = await peer.expect("hangup")
        assert hangup == {"type": "hangup", "callId": child, "cause": "NORMAL_HANGUP"}
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=child)
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=parent)
    assert world.gateway.webrtc.peer_count == 0


def props(event: dict) -> dict:
    return event["properties"]


async def test_a_peer_calls_in_and_talks_to_a_phone(world: WebRtcWorld):
    async with WebRtcTestPeer(
        world.ws_url, await world.token("bob", displayName="Bob B"), tone_hz=600
    ) as peer:
        await peer.expect("registered")
        call_id = await peer.call("support")
        received = (await world.recorder.wait_for(types=["CALL_RECEIVED"], call_id=call_id))[-1]
        call = props(received)["call"]
        assert call["endpoint"] == {"type": "WEBRTC", "identity": "bob", "displayName": "Bob B"}
        assert call["from"] == "bob" and call["to"] == "support"
        assert call["callsConfigurationId"] == CONFIG and call["direction"] == "INBOUND"
        answered = await world.api.post(f"/calls/1/calls/{call_id}/answer", json={})
        assert answered.status_code == 200, answered.text
        await peer.expect("answered")
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
        created = await world.api.post(
            "/calls/1/dialogs",
            json={
                "parentCallId": call_id,
                "childCallRequest": {"endpoint": {"type": "PHONE", "phoneNumber": PHONE}},
            },
        )
        assert created.status_code == 201, created.text
        child = created.json()["childCall"]["id"]
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=child)
        await world.api.put(
            f"/pstn/1/calls/{child}/source", json={"type": "tone", "frequency": 900}
        )
        await peer.wait_heard(0.6)
        assert abs(dominant_frequency(peer.heard_audio(0.5), 8000) - 900) < 10
        assert abs(dominant_frequency(await phone_heard(world, child, 0.5), 8000) - 600) < 10
        await peer.hangup()
        finished = await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
        assert props(finished[-1])["callLog"]["errorCode"]["name"] == "NORMAL_HANGUP"
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=child)
    assert world.gateway.webrtc.peer_count == 0


async def test_an_inbound_call_hung_up_before_the_answer_is_cancelled(world: WebRtcWorld):
    async with WebRtcTestPeer(world.ws_url, await world.token("carol")) as peer:
        call_id = await peer.call("sales")
        await world.recorder.wait_for(types=["CALL_RECEIVED"], call_id=call_id)
        await peer.hangup()
        failed = await world.recorder.wait_for(types=["CALL_FAILED"], call_id=call_id)
        assert props(failed[-1])["callLog"]["errorCode"]["name"] == "CANCELLED"
    assert world.gateway.webrtc.peer_count == 0


async def test_a_ringing_peer_rejects(world: WebRtcWorld):
    async with WebRtcTestPeer(world.ws_url, await world.token("dave")) as peer:
        await peer.expect("registered")
        call_id = await call_identity(world, "dave")
        await peer.expect("incoming")
        await world.recorder.wait_for(types=["CALL_RINGING"], call_id=call_id)
        await peer.reject(call_id, "BUSY")
        failed = await world.recorder.wait_for(types=["CALL_FAILED"], call_id=call_id)
        assert props(failed[-1])["callLog"]["errorCode"]["name"] == "BUSY"
    assert world.gateway.webrtc.peer_count == 0


async def test_a_call_to_an_identity_nobody_signed_in_as_fails(world: WebRtcWorld):
    created = await world.api.post(
        "/calls/1/calls",
        json={"endpoint": {"type": "WEBRTC", "identity": "nobody"}, "callsConfigurationId": CONFIG},
    )
    assert created.status_code == 201, created.text
    failed = await world.recorder.wait_for(types=["CALL_FAILED"], call_id=created.json()["id"])
    assert props(failed[-1])["callLog"]["errorCode"]["name"] == "DESTINATION_UNAVAILABLE"
    too_long = {"type": "WEBRTC", "identity": "nobody", "displayName": "x" * 256}
    refused = await world.api.post(
        "/calls/1/calls", json={"endpoint": too_long, "callsConfigurationId": CONFIG}
    )
    assert refused.status_code == 400, refused.text
    assert (
        "endpoint.displayName"
        in refused.json()["requestError"]["serviceException"]["validationErrors"]
    )


async def call_identity(world: WebRtcWorld, identity: str) -> str:
    """The app calls a WEBRTC endpoint: the new call's id."""
    created = await world.api.post(
        "/calls/1/calls",
        json={"endpoint": {"type": "WEBRTC", "identity": identity}, "callsConfigurationId": CONFIG},
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def answered_call(world: WebRtcWorld, peer: WebRtcTestPeer, identity: str) -> str:
    await peer.expect("registered")
    call_id = await call_identity(world, identity)
    await peer.answer(await peer.expect("incoming"))
    await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
    return call_id


async def test_the_socket_closing_mid_call_ends_the_leg(world: WebRtcWorld):
    peer = WebRtcTestPeer(world.ws_url, await world.token("erin"))
    await peer.connect()
    try:
        call_id = await answered_call(world, peer, "erin")
        await peer._ws.close()  # the tab goes; its peer connection is left to time out
        started = time.monotonic()
        finished = await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
        assert time.monotonic() - started < 3
        assert props(finished[-1])["callLog"]["errorCode"]["name"] == "NORMAL_HANGUP"
    finally:
        await peer.close()
    assert world.gateway.webrtc.peer_count == 0


async def test_the_peer_connection_closing_mid_call_ends_the_leg(world: WebRtcWorld):
    async with WebRtcTestPeer(world.ws_url, await world.token("frank")) as peer:
        call_id = await answered_call(world, peer, "frank")
        await peer.wait_heard(0.1, level=-1)  # media flows
        await peer.drop_media()  # DTLS close_notify; the socket stays open
        finished = await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
        assert props(finished[-1])["callLog"]["errorCode"]["name"] == "NORMAL_HANGUP"
    assert world.gateway.webrtc.peer_count == 0


def webrtc_task(task: asyncio.Task) -> bool:
    """A task of aiortc, aioice or our WebRTC code (not the webhook recorder's, say)."""
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return any(part in filename for part in ("aiortc", "aioice", "trunks/webrtc", "webrtc_peer"))


async def test_nothing_is_left_running_after_calls(world: WebRtcWorld):
    before = {t for t in asyncio.all_tasks()}
    async with WebRtcTestPeer(world.ws_url, await world.token("gina")) as peer:
        call_id = await answered_call(world, peer, "gina")
        await peer.wait_heard(0.1, level=-1)
        await world.api.post(f"/calls/1/calls/{call_id}/hangup", json={})
        await peer.expect("hangup")
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
        # The gateway closed its side: DTLS close_notify reaches the peer, which closes too.
        assert peer.pc is not None
        async with asyncio.timeout(3):
            while peer.pc.connectionState != "closed":
                await asyncio.sleep(0.02)
    assert world.gateway.webrtc.peer_count == 0
    deadline = time.monotonic() + 3
    while True:
        left = {t for t in asyncio.all_tasks() - before if not t.done() and webrtc_task(t)}
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert not left, [t.get_coro() for t in left]


async def test_keys_and_mute_from_the_page(world: WebRtcWorld):
    """``dtmf`` messages are key presses (here unsolicited DTMF_CAPTURED); while muted the
    page is heard as silence."""
    async with WebRtcTestPeer(world.ws_url, await world.token("hank"), tone_hz=700) as peer:
        parent, child = await world.dialog_to("hank")
        await peer.answer(await peer.expect("incoming"))
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=parent)
        await peer.dtmf("4#")
        captured = await world.recorder.wait_for(
            2, types=["DTMF_CAPTURED"], call_id=child, timeout=5
        )
        assert [props(e)["dtmf"] for e in captured] == ["4", "#"]
        await peer.send({"type": "dtmf", "callId": child, "digits": "x"})
        assert "digits" in (await peer.expect("error"))["reason"]
        await phone_hears(world, parent, 700)  # the tone reaches the phone
        await peer.mute()
        async with asyncio.timeout(5):
            while np.abs(await phone_heard(world, parent, 0.3)).max() > 0:
                await asyncio.sleep(0.05)
        await peer.mute(False)
        await phone_hears(world, parent, 700)
        changes = await world.recorder.wait_for(2, types=["CALL_MEDIA_CHANGED"], call_id=child)
        assert [props(e) for e in changes] == [media(user_muted=True), media(user_muted=False)]
        await peer.mute(False)  # no change, no event
        await peer.mute()
        changes = await world.recorder.wait_for(3, types=["CALL_MEDIA_CHANGED"], call_id=child)
        assert props(changes[2]) == media(user_muted=True)
        call = (await world.api.get(f"/calls/1/calls/{child}")).json()
        assert call["media"] == media(user_muted=True)


def media(user_muted: bool) -> dict:
    """MediaProperties of a call that the app neither muted nor deafened."""
    return {
        "audio": {"muted": False, "userMuted": user_muted, "deaf": False},
        "video": {"camera": False, "screenShare": False, "blind": False},
    }


async def test_every_tab_of_an_identity_rings_and_the_first_answer_wins(world: WebRtcWorld):
    token = await world.token("ivan")
    async with (
        WebRtcTestPeer(world.ws_url, token) as first,
        WebRtcTestPeer(world.ws_url, token) as second,
    ):
        for peer in (first, second):
            await peer.expect("registered")
        call_id = await call_identity(world, "ivan")
        await first.expect("incoming")
        await second.answer(await second.expect("incoming"))
        assert (await first.expect("hangup"))["cause"] == "ANSWERED_ELSEWHERE"
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
        await first.close()  # the tab that lost closes: the call goes on
        await second.wait_heard(0.2, level=-1)
        assert world.gateway.calls.live(call_id) is not None
        await second.hangup()
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
    assert world.gateway.webrtc.peer_count == 0


async def test_two_tabs_answering_at_once_one_wins_and_hears(world: WebRtcWorld):
    """The second answer arrives while the first is applied: it is refused, not applied
    over it, and the tab whose answer won stays in the call."""
    token = await world.token("nina")
    async with (
        WebRtcTestPeer(world.ws_url, token) as first,
        WebRtcTestPeer(world.ws_url, token) as second,
    ):
        for peer in (first, second):
            await peer.expect("registered")
        call_id = await call_identity(world, "nina")
        offers = [await peer.expect("incoming") for peer in (first, second)]
        await asyncio.gather(first.answer(offers[0]), second.answer(offers[1]))
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id)
        told = {asyncio.ensure_future(p.expect("hangup")): p for p in (first, second)}
        done, pending = await asyncio.wait(told, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending:
            waiting.cancel()
        assert len(done) == 1, "no tab, or both, told the call was answered elsewhere"
        task = done.pop()
        assert task.result()["cause"] == "ANSWERED_ELSEWHERE"
        loser = told[task]
        winner = second if loser is first else first
        refused = [m["reason"] for m in loser.messages if m["type"] == "error"]
        assert refused == ["the call cannot be answered"]
        await winner.wait_heard(0.2, level=-1)  # its media flows: its answer was the one applied
        assert not [m for m in winner.messages if m["type"] in ("hangup", "error")]
        assert world.gateway.calls.live(call_id) is not None
        await winner.hangup()
        finished = await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)
        assert props(finished[-1])["callLog"]["errorCode"]["name"] == "NORMAL_HANGUP"
        assert world.recorder.types(call_id).count("CALL_ESTABLISHED") == 1
    assert world.gateway.webrtc.peer_count == 0


async def test_the_app_hanging_up_a_ringing_call_stops_the_ringing(world: WebRtcWorld):
    async with WebRtcTestPeer(world.ws_url, await world.token("judy")) as peer:
        await peer.expect("registered")
        call_id = await call_identity(world, "judy")
        await peer.expect("incoming")
        await world.api.post(f"/calls/1/calls/{call_id}/hangup", json={})
        assert (await peer.expect("hangup"))["cause"] == "CANCELLED"
        failed = await world.recorder.wait_for(types=["CALL_FAILED"], call_id=call_id)
        assert props(failed[-1])["callLog"]["errorCode"]["name"] == "CANCELLED"
        await peer.send({"type": "answer", "callId": call_id, "sdp": "v=0"})
        assert (await peer.expect("error"))["reason"] == "no such call on this socket"
    assert world.gateway.webrtc.peer_count == 0


async def test_an_unusable_answer_fails_the_call(world: WebRtcWorld):
    async with WebRtcTestPeer(world.ws_url, await world.token("kate")) as peer:
        await peer.expect("registered")
        call_id = await call_identity(world, "kate")
        await peer.expect("incoming")
        await peer.send({"type": "answer", "callId": call_id, "sdp": "v=0\r\nnonsense"})
        assert (await peer.expect("error"))["reason"].startswith("unusable answer")
        assert (await peer.expect("hangup"))["cause"] == "NO_COMMON_CODEC"
        failed = await world.recorder.wait_for(types=["CALL_FAILED"], call_id=call_id)
        assert props(failed[-1])["callLog"]["errorCode"]["name"] == "NO_COMMON_CODEC"
    assert world.gateway.webrtc.peer_count == 0


async def test_a_peer_calls_in_and_meets_a_phone_in_a_conference(world: WebRtcWorld):
    async with WebRtcTestPeer(world.ws_url, await world.token("leo"), tone_hz=500) as peer:
        webrtc = await peer.call("conference")
        placed = await world.api.post("/pstn/1/calls", json={"from": CALLER, "to": DID})
        phone = placed.json()["callId"]
        for call_id in (webrtc, phone):
            await world.recorder.wait_for(types=["CALL_RECEIVED"], call_id=call_id)
        connected = await world.api.post(
            "/calls/1/connect", json={"callIds": [webrtc, phone], "conferenceRequest": {}}
        )
        assert connected.status_code == 200, connected.text
        conference = connected.json()["id"]
        await peer.expect("answered")
        await world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=phone)
        await world.api.put(
            f"/pstn/1/calls/{phone}/source", json={"type": "tone", "frequency": 800}
        )
        await peer.wait_heard(0.6)
        assert abs(dominant_frequency(peer.heard_audio(0.5), 8000) - 800) < 10
        await phone_hears(world, phone, 500)
        await peer.mute()  # the person mutes: the app sees the participant muted by itself
        changed = await world.recorder.wait_for(types=["PARTICIPANT_MEDIA_CHANGED"], call_id=webrtc)
        assert changed[0]["conferenceId"] == conference
        assert props(changed[0]) == media(user_muted=True)
        await world.recorder.wait_for(types=["CALL_MEDIA_CHANGED"], call_id=webrtc)
        participants = (await world.api.get(f"/calls/1/conferences/{conference}")).json()
        mine = [p for p in participants["participants"] if p["callId"] == webrtc]
        assert mine[0]["media"] == media(user_muted=True), mine
        await world.api.post(f"/calls/1/conferences/{conference}/hangup")
        assert (await peer.expect("hangup"))["cause"] == "NORMAL_HANGUP"
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=webrtc)
    assert world.gateway.webrtc.peer_count == 0


async def test_media_that_stops_with_the_socket_open_ends_the_leg(world: WebRtcWorld):
    """The page's RTP stops (its sender has no track: ICE and DTLS stay up, the socket too):
    the leg ends after ``webrtc_media_timeout`` (1 s here), not after ICE consent's 30 s."""
    async with WebRtcTestPeer(world.ws_url, await world.token("nina")) as peer:
        call_id = await answered_call(world, peer, "nina")
        await peer.wait_heard(0.2, level=-1)
        stopped = asyncio.get_running_loop().time()
        for sender in peer.pc.getSenders():
            sender.replaceTrack(None)
        (finished,) = await world.recorder.wait_for(
            types=["CALL_FINISHED"], call_id=call_id, timeout=5
        )
        took = asyncio.get_running_loop().time() - stopped
        assert 0.9 < took < 3, took
        assert finished["properties"]["callLog"]["errorCode"]["name"] == "NORMAL_HANGUP"
        assert (await peer.expect("hangup"))["callId"] == call_id
    assert world.gateway.webrtc.peer_count == 0


async def test_mute_takes_only_true_or_false(world: WebRtcWorld):
    async with WebRtcTestPeer(world.ws_url, await world.token("olga")) as peer:
        call_id = await answered_call(world, peer, "olga")
        await peer.send({"type": "mute", "callId": call_id, "muted": "false"})
        assert "muted" in (await peer.expect("error"))["reason"]
        assert world.gateway.calls.get(call_id).user_muted is False
        await peer.hangup()


async def test_a_webrtc_call_is_played_to_and_recorded_like_any_other(world: WebRtcWorld):
    """A prompt reaches the peer; the call's recording holds what the peer sent and the
    prompt it heard."""
    async with WebRtcTestPeer(world.ws_url, await world.token("pia"), tone_hz=600) as peer:
        call_id = await answered_call(world, peer, "pia")
        calls = f"/calls/1/calls/{call_id}"
        started = await world.api.post(
            f"{calls}/start-recording", json={"recording": {"recordingType": "AUDIO"}}
        )
        assert started.status_code == 200, started.text
        files = {"file": ("prompt.wav", wav_bytes(tone(1000, 1.5, 8000)), "audio/wav")}
        file_id = (await world.api.post("/calls/1/files", files=files)).json()["id"]
        played = await world.api.post(
            f"{calls}/play", json={"content": {"type": "FILE", "fileId": file_id}}
        )
        assert played.status_code == 200, played.text
        await world.recorder.wait_for(types=["PLAY_FINISHED"], call_id=call_id, timeout=5)
        heard = peer.heard_audio(3.0)
        assert tone_level(heard, 8000, 1000) > -30, "the peer did not hear the prompt"
        assert (await world.api.post(f"{calls}/stop-recording", json={})).status_code == 200
        (ready,) = await world.recorder.wait_for(types=["CALL_RECORDING_READY"], call_id=call_id)
        file = props(ready)["recording"]["files"][0]
        download = await world.api.get(f"/calls/1/recordings/files/{file['id']}")
        recorded, rate = read_wav(download.content)
        assert tone_level(recorded, rate, 600) > -30  # the peer's voice
        assert tone_level(recorded, rate, 1000) > -30  # and the prompt it heard
        await peer.hangup()
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=call_id)


async def test_a_webrtc_endpoint_is_added_to_a_conference(world: WebRtcWorld):
    async with WebRtcTestPeer(world.ws_url, await world.token("quin"), tone_hz=450) as peer:
        await peer.expect("registered")
        placed = await world.api.post("/pstn/1/calls", json={"from": CALLER, "to": DID})
        phone = placed.json()["callId"]
        await world.recorder.wait_for(types=["CALL_RECEIVED"], call_id=phone)
        await world.api.post(f"/calls/1/calls/{phone}/answer", json={})
        await world.api.put(
            f"/pstn/1/calls/{phone}/source", json={"type": "tone", "frequency": 900}
        )
        created = await world.api.post(
            "/calls/1/conferences", json={"name": "with-a-browser", "callsConfigurationId": CONFIG}
        )
        conference = created.json()["id"]
        assert (await world.api.put(f"/calls/1/conferences/{conference}/call/{phone}",
                                    json={})).status_code == 200  # fmt: skip
        endpoint = {"type": "WEBRTC", "identity": "quin", "displayName": "Quin"}
        added = await world.api.post(
            f"/calls/1/conferences/{conference}/call", json={"callRequest": {"endpoint": endpoint}}
        )
        assert added.status_code == 200, added.text
        webrtc = added.json()["call"]["id"]
        await peer.answer(await peer.expect("incoming"))
        await world.recorder.wait_for(types=["PARTICIPANT_JOINED"], call_id=webrtc)
        await peer.wait_heard(0.6)
        assert abs(dominant_frequency(peer.heard_audio(0.5), 8000) - 900) < 10
        await phone_hears(world, phone, 450)
        await world.api.post(f"/calls/1/conferences/{conference}/hangup")
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=webrtc)
    assert world.gateway.webrtc.peer_count == 0
