"""Outgoing re-INVITEs (RFC 3261 §14) and ``redirect_media``, with SIPp as the endpoint: the
gateway calls SIPp, then points its media elsewhere. SIPp's scenarios check the offer on the
wire (c=, m=, direction); the tests check what the gateway makes of the answer, of a refusal,
of glare either way, and of a hangup while a re-INVITE is pending."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.ports import MediaRedirectFailed
from gateway.media.port import NativeMedia
from tests.sip.sipp import SIPP, Sipp, SippResult, World, free_udp_port, outcome, running_world
from trunks.sip import transaction

pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp is not installed (make system-deps)")

# Another endpoint's media, as bypass would hand it over (the scenarios check these values).
TARGET = NativeMedia("127.0.0.2", 40000, "PCMU/8000", 0, telephone_event=101)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_world(tmp_path) as world:
        yield world


async def answered_call(world: World, sipp: Sipp) -> str:
    """The gateway calls SIPp (a STATIC trunk to it), which answers: the call's id."""
    trunk = await world.static_trunk(destination_hosts=[f"127.0.0.1:{sipp.port}"])
    call_id = await world.dial(trunk["id"])
    await sipp.guard(world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id))
    return call_id


def received(result: SippResult, start: str) -> list[str]:
    """The messages SIPp received whose first line starts with ``start``, in order, each once
    (retransmissions repeat the CSeq)."""
    found: dict[str, str] = {}
    for block in re.split(r"\n-{10,}[^\n]*\n", result.messages):
        message = re.search(rf"^{re.escape(start)}.*", block, re.M | re.S)
        if "message received" in block and message is not None:
            key = re.search(r"^CSeq:.*$", message[0], re.M)
            found.setdefault(key[0] if key else message[0], message[0])
    return list(found.values())


def invites(result: SippResult) -> list[str]:
    """The INVITEs SIPp received (the gateway's initial INVITE and re-INVITEs)."""
    return received(result, "INVITE sip:")


def cseq(message: str) -> str:
    match = re.search(r"^CSeq:\s*(\d+)", message, re.M)
    assert match, message
    return match[1]


def origin(message: str) -> tuple[int, int]:
    """(session id, version) of the o= line of a message's SDP."""
    match = re.search(r"^o=\S+ (\d+) (\d+) ", message, re.M)
    assert match, message
    return int(match[1]), int(match[2])


def sipp_media(sipp: Sipp) -> NativeMedia:
    """What SIPp's answers declare (PCMU and telephone-event 101 on its media port)."""
    return NativeMedia("127.0.0.1", sipp_media_port(sipp), "PCMU/8000", 0, telephone_event=101)


def sipp_media_port(sipp: Sipp) -> int:
    return int(sipp.argv[sipp.argv.index("-mp") + 1])


def uas(scenario: str, tmp_path: Path) -> Sipp:
    """A SIPp UAS on a media port of its own (in its SDP; nothing is sent to it)."""
    return Sipp(scenario, tmp_path, options=["-mp", str(free_udp_port())])


async def test_redirect_re_invites_the_endpoint_towards_the_target(world: World, tmp_path: Path):
    """One re-INVITE in the dialog (next CSeq, same o= session, version + 1) offering the
    target's address, port, codec and telephone-event; SIPp's answer is the endpoint's media;
    the gateway's own RTP session is left as it was (it is not in the path any more)."""
    async with uas("uas_reinvite", tmp_path) as sipp:
        call_id = await answered_call(world, sipp)
        port = world.gateway.calls.media_port(call_id)
        remote = port.session.remote
        # No RTP from SIPp yet: nothing says it is where its SDP says, so no bypass target.
        assert world.gateway.calls.native_media(call_id) is None
        answered = await sipp.guard(world.gateway.calls.redirect_media(call_id, TARGET))
        assert answered == sipp_media(sipp)  # SIPp kept its own media
        assert world.gateway.calls.native_media(call_id) == answered  # it sends to TARGET now
        assert port.session.remote == remote
        await world.hangup(call_id)
        result = await sipp.wait()
    result.assert_ok()
    initial, reinvite = invites(result)
    assert int(cseq(reinvite)) == int(cseq(initial)) + 1
    (session, version), (again, next_version) = origin(initial), origin(reinvite)
    assert (again, next_version) == (session, version + 1)
    assert outcome(await world.sequence(call_id)) == ("FINISHED", "NORMAL_HANGUP", "API")


async def test_a_refused_redirect_changes_nothing(world: World, tmp_path: Path):
    """488 to the re-INVITE: MediaRedirectFailed, the leg's media and SDP state as they were,
    the call still up; the next offer has the same version, since the refused one never
    counted."""
    async with uas("uas_reinvite_488", tmp_path) as sipp:
        call_id = await answered_call(world, sipp)
        port = world.gateway.calls.media_port(call_id)
        before = (world.gateway.calls.native_media(call_id), port.session.remote)
        with pytest.raises(MediaRedirectFailed, match="488"):
            await sipp.guard(world.gateway.calls.redirect_media(call_id, TARGET))
        assert (world.gateway.calls.native_media(call_id), port.session.remote) == before
        state = (await world.api.get(f"/calls/1/calls/{call_id}")).json()["state"]
        assert state == "ESTABLISHED"
        assert await sipp.guard(world.gateway.calls.redirect_media(call_id, TARGET))
        await world.hangup(call_id)
        result = await sipp.wait()
    result.assert_ok()
    initial, refused, taken = invites(result)
    assert [int(cseq(m)) for m in (initial, refused, taken)] == [1, 2, 3]
    assert origin(refused) == origin(taken) == (origin(initial)[0], origin(initial)[1] + 1)


async def test_glare_retries_after_the_owners_delay(world: World, tmp_path: Path):
    """491 to our re-INVITE: we made the Call-ID, so the retry waits 2.1 to 4 s (§14.1),
    offers the same SDP with the next CSeq, and succeeds."""
    async with uas("uas_reinvite_glare", tmp_path) as sipp:
        call_id = await answered_call(world, sipp)
        loop = asyncio.get_running_loop()
        started = loop.time()
        answered = await sipp.guard(world.gateway.calls.redirect_media(call_id, TARGET))
        elapsed = loop.time() - started
        assert answered == sipp_media(sipp)
        await world.hangup(call_id)
        result = await sipp.wait()
    result.assert_ok()
    assert 2.1 <= elapsed < 4.5
    _, glared, retried = invites(result)
    assert (int(cseq(glared)) + 1, origin(glared)) == (int(cseq(retried)), origin(retried))


async def test_their_re_invite_while_ours_is_pending_gets_491(world: World, tmp_path: Path):
    """SIPp sends its own re-INVITE before answering ours: 491 (its scenario expects it), and
    ours still succeeds afterwards; their refused offer (sendonly) changed nothing."""
    async with uas("uas_reinvite_crossed", tmp_path) as sipp:
        call_id = await answered_call(world, sipp)
        answered = await sipp.guard(world.gateway.calls.redirect_media(call_id, TARGET))
        assert answered == sipp_media(sipp)
        assert answered.direction == "sendrecv"
        await world.hangup(call_id)
        result = await sipp.wait()
    result.assert_ok()


async def test_a_bye_while_waiting_out_glare_leaves_no_timer(world: World, tmp_path: Path):
    """491, then SIPp hangs up during the back-off: the redirect fails before the retry was
    due, and no retry timer is left on the loop."""
    async with uas("uas_reinvite_glare_bye", tmp_path) as sipp:
        call_id = await answered_call(world, sipp)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(MediaRedirectFailed, match="ended"):
            await sipp.guard(world.gateway.calls.redirect_media(call_id, TARGET))
        assert loop.time() - started < 2.1  # the earliest a retry could have gone
        result = await sipp.wait()
    result.assert_ok()
    retries = [
        handle
        for handle in loop._scheduled  # type: ignore[attr-defined]
        if not handle.cancelled() and "_retry_reinvite" in repr(handle)
    ]
    assert retries == []
    assert outcome(await world.sequence(call_id)) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")


@pytest.mark.parametrize(
    ("scenario", "error"),
    [("uas_reinvite_bye", "the session ended"), ("uas_reinvite_silent", "408 Request Timeout")],
)
async def test_a_re_invite_the_endpoint_never_answers_ends_with_the_call(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: str, error: str
):
    """SIPp hangs up instead of answering (then ends the re-INVITE with 487), or never answers
    at all, so that the transaction times out (64 x T1, shortened here) and the dialog is over
    (§14.1): either way the redirect fails with why, and the call ends."""
    monkeypatch.setattr(transaction, "T1", 0.02)
    async with uas(scenario, tmp_path) as sipp:
        call_id = await answered_call(world, sipp)
        with pytest.raises(MediaRedirectFailed, match=error):
            await sipp.guard(world.gateway.calls.redirect_media(call_id, TARGET))
        result = await sipp.wait()
    result.assert_ok()
    assert outcome(await world.sequence(call_id)) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")
