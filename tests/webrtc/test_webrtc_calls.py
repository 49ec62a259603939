"""WebRTC legs with the aiortc test peer over real loopback ICE/DTLS-SRTP: calls to an
identity, calls from it, audio both ways with a simulated phone, the signalling's errors."""

from __future__ import annotations

import time

from gateway.testing.audio import dominant_frequency, read_wav
from gateway.testing.webrtc_peer import WebRtcTestPeer
from tests.webrtc.conftest import CALLER, DID, WebRtcWorld


async def phone_heard(world: WebRtcWorld, call_id: str, seconds: float):
    pcm, rate = read_wav((await world.api.get(f"/pstn/1/calls/{call_id}/heard")).content)
    assert rate == 8000
    return pcm[-int(seconds * rate) :]


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
        await world.api.put(
            f"/pstn/1/calls/{parent}/source", json={"type": "tone", "frequency": 1000}
        )
        await peer.wait_heard(1.0)
        print(f"set-up to first audio: {time.monotonic() - started:.3f} s")
        assert abs(dominant_frequency(peer.heard_audio(0.5), 8000) - 1000) < 10
        at_phone = await phone_heard(world, parent, 0.5)
        assert abs(dominant_frequency(at_phone, 8000) - 440) < 10
        await world.api.post(f"/calls/1/calls/{child}/hangup", json={})
        hangup = await peer.expect("hangup")
        assert hangup == {"type": "hangup", "callId": child, "cause": "NORMAL_HANGUP"}
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=child)
        await world.recorder.wait_for(types=["CALL_FINISHED"], call_id=parent)
    assert world.gateway.webrtc.peer_count == 0
