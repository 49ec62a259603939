"""SIPp against the real gateway on loopback: each test asserts SIPp's outcome (exit code,
statistics, nothing unexpected in its error log) and the Calls API side (the exact CALL_*
events, states, error codes and hangup sources)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.sip.sipp import (
    CA,
    CERT,
    DID,
    KEY,
    SIPP,
    Sipp,
    World,
    outcome,
    run_sipp,
    running_world,
    status_of,
    tls_relay,
    udp_client,
)

pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp is not installed (make system-deps)")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_world(tmp_path) as world:
        yield world


async def test_register_with_digest(world: World, tmp_path: Path):
    trunk = await world.registered_trunk()
    assert (await world.trunk_status(trunk["id"]))["registrationStatus"] == "UNREGISTERED"
    result = await run_sipp(
        "register",
        tmp_path,
        remote=world.remote,
        options=["-s", trunk["username"], "-au", trunk["username"], "-ap", trunk["password"]],
    )
    result.assert_ok()
    status = await world.trunk_status(trunk["id"])
    assert status["registrationStatus"] == "REGISTERED", status
    # §10.3 step 8: the 200 lists the current bindings, each with its expires parameter.
    contact = rf"Contact: <sip:{trunk['username']}@127\.0\.0\.1:\d+[^>]*>;expires=(\d+)"
    granted = re.search(rf"SIP/2\.0 200 OK\r?\n(?:.+\r?\n)*?{contact}", result.messages)
    assert granted and 290 <= int(granted[1]) <= 300, result.describe()


async def test_wrong_password_is_challenged_then_blocked(world: World, tmp_path: Path):
    trunk = await world.registered_trunk()
    result = await run_sipp(
        "register_wrong_password",
        tmp_path,
        remote=world.remote,
        options=["-s", trunk["username"], "-au", trunk["username"], "-ap", "not-the-password"],
    )
    result.assert_ok()
    assert (await world.trunk_status(trunk["id"]))["registrationStatus"] == "UNREGISTERED"
    # Blocked means blocked: the right password is refused too, without a challenge.
    honest = await run_sipp(
        "register",
        tmp_path,
        remote=world.remote,
        options=["-s", trunk["username"], "-au", trunk["username"], "-ap", trunk["password"]],
    )
    assert honest.returncode == 1 and honest.count("FailedUnexpectedMessage") == 1, (
        honest.describe()
    )
    assert "SIP/2.0 403 Forbidden" in honest.messages, honest.describe()
    assert (await world.trunk_status(trunk["id"]))["registrationStatus"] == "UNREGISTERED"


def calling(world: World, trunk: dict) -> list[str]:
    """SIPp options for a call to the DID with a REGISTERED trunk's credentials; SIPp hashes
    ``-auth_uri`` as the digest-uri, which must be the Request-URI."""
    return [
        "-s", DID,
        "-au", trunk["username"],
        "-ap", trunk["password"],
        "-auth_uri", f"{DID}@{world.remote}",
    ]  # fmt: skip


async def test_authenticated_call_hung_up_by_caller(world: World, tmp_path: Path):
    trunk = await world.registered_trunk()
    sipp = Sipp("uac_auth_call", tmp_path, remote=world.remote,
                options=calling(world, trunk))  # fmt: skip
    async with sipp:
        call_id = await sipp.guard(world.received())
        await world.answer(call_id)
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED"]
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")
    received = events[0]["properties"]["call"]
    assert received["endpoint"] == {"type": "SIP", "username": "15557654321",
                                    "sipTrunkId": trunk["id"]}  # fmt: skip
    assert (received["direction"], received["to"]) == ("INBOUND", DID)


async def test_authenticated_call_hung_up_by_api(world: World, tmp_path: Path):
    trunk = await world.registered_trunk()
    sipp = Sipp("uac_auth_call_remote_bye", tmp_path, remote=world.remote,
                options=calling(world, trunk))  # fmt: skip
    async with sipp:
        call_id = await sipp.guard(world.received())
        await world.answer(call_id)
        await sipp.guard(world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id))
        await world.hangup(call_id)
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED"]
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "API")


async def test_caller_cancels_before_the_answer(world: World, tmp_path: Path):
    trunk = await world.registered_trunk()
    result = await run_sipp("uac_auth_cancel", tmp_path, remote=world.remote,
                            options=calling(world, trunk))  # fmt: skip
    result.assert_ok()
    call_id = await world.received()
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_RECEIVED", "CALL_FAILED"]
    assert outcome(events) == ("CANCELLED", "CANCELLED", "ENDPOINT")


@pytest.mark.parametrize(
    ("scenario", "error_code", "state"),
    [("uac_auth_busy", "BUSY", "BUSY"), ("uac_auth_declined", "REJECTED", "FAILED")],
)
async def test_application_rejects_the_call(
    world: World, tmp_path: Path, scenario: str, error_code: str, state: str
):
    trunk = await world.registered_trunk()
    sipp = Sipp(scenario, tmp_path, remote=world.remote, options=calling(world, trunk))
    async with sipp:
        call_id = await sipp.guard(world.received())
        await world.hangup(call_id, error_code)
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_RECEIVED", "CALL_FAILED"]
    assert outcome(events) == (state, error_code, "API")


# -- the gateway calls SIPp ---------------------------------------------------------------------


async def test_outbound_answered_and_hung_up_by_api(world: World, tmp_path: Path):
    async with Sipp("uas_answer", tmp_path) as sipp:
        trunk = await world.static_trunk(destination_hosts=[f"127.0.0.1:{sipp.port}"])
        call_id = await world.dial(trunk["id"])
        await sipp.guard(world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id))
        await world.hangup(call_id)
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == [
        "CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_FINISHED",
    ]  # fmt: skip
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "API")
    assert events[0]["properties"]["call"]["endpoint"] == {
        "type": "SIP", "username": "alice", "sipTrunkId": trunk["id"],
    }  # fmt: skip


async def test_outbound_hung_up_by_callee(world: World, tmp_path: Path):
    async with Sipp("uas_answer_then_bye", tmp_path) as sipp:
        trunk = await world.static_trunk(destination_hosts=[f"127.0.0.1:{sipp.port}"])
        call_id = await world.dial(trunk["id"])
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == [
        "CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_FINISHED",
    ]  # fmt: skip
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")


async def test_outbound_to_a_registered_trunk(world: World, tmp_path: Path):
    """One SIPp registers a Contact pointing at another SIPp, which the gateway then calls."""
    trunk = await world.registered_trunk()
    async with Sipp("uas_answer_then_bye", tmp_path) as uas:
        registration = await run_sipp(
            "register_contact",
            tmp_path,
            remote=world.remote,
            options=[
                "-s", trunk["username"],
                "-au", trunk["username"],
                "-ap", trunk["password"],
                "-set", "contact_port", str(uas.port),
            ],
        )  # fmt: skip
        registration.assert_ok()
        assert (await world.trunk_status(trunk["id"]))["registrationStatus"] == "REGISTERED"
        call_id = await world.dial(trunk["id"], user="bob")
        result = await uas.wait()
    result.assert_ok()
    assert f"INVITE sip:bob@127.0.0.1:{uas.port} SIP/2.0" in uas.messages()
    events = await world.sequence(call_id)
    assert world.types(call_id) == [
        "CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_FINISHED",
    ]  # fmt: skip
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")


async def test_outbound_busy(world: World, tmp_path: Path):
    async with Sipp("uas_busy", tmp_path) as sipp:
        trunk = await world.static_trunk(destination_hosts=[f"127.0.0.1:{sipp.port}"])
        call_id = await world.dial(trunk["id"])
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_STARTED", "CALL_RINGING", "CALL_FAILED"]
    assert outcome(events) == ("BUSY", "BUSY", "ENDPOINT")


async def test_outbound_no_answer_is_cancelled(world: World, tmp_path: Path):
    async with Sipp("uas_ring_forever", tmp_path) as sipp:
        trunk = await world.static_trunk(destination_hosts=[f"127.0.0.1:{sipp.port}"])
        call_id = await world.dial(trunk["id"], connect_timeout=1)
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_STARTED", "CALL_RINGING", "CALL_FAILED"]
    assert outcome(events) == ("NO_ANSWER", "NO_ANSWER", "PLATFORM")


async def test_outbound_early_media(world: World, tmp_path: Path):
    async with Sipp("uas_early_media", tmp_path) as sipp:
        trunk = await world.static_trunk(destination_hosts=[f"127.0.0.1:{sipp.port}"])
        call_id = await world.dial(trunk["id"])
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == [
        "CALL_STARTED", "CALL_PRE_ESTABLISHED", "CALL_ESTABLISHED", "CALL_FINISHED",
    ]  # fmt: skip
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")


# -- inside a call ------------------------------------------------------------------------------


async def test_reinvite_to_hold_gets_recvonly(world: World, tmp_path: Path):
    await world.static_trunk(source_hosts=["127.0.0.1"])
    sipp = Sipp("uac_reinvite_hold", tmp_path, remote=world.remote, options=["-s", DID])
    async with sipp:
        call_id = await sipp.guard(world.received())
        await world.answer(call_id)
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED"]
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")


async def test_late_offer_call(world: World, tmp_path: Path):
    """No SDP in the INVITE: the gateway offers in its 200 OK, SIPp answers in the ACK."""
    await world.static_trunk(source_hosts=["127.0.0.1"])
    async with Sipp("uac_late_offer", tmp_path, remote=world.remote, options=["-s", DID]) as sipp:
        call_id = await sipp.guard(world.received())
        await world.answer(call_id)
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED"]
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")


async def test_bye_before_the_ack_ends_an_answered_call(world: World, tmp_path: Path):
    """The caller's ACK never comes (lost), its BYE does: the BYE carries our To tag, so our
    200 OK reached it and the call was answered (RFC 3261 §12.1.1, §15.1.2). Not a failure."""
    await world.static_trunk(source_hosts=["127.0.0.1"])
    sipp = Sipp("uac_bye_without_ack", tmp_path, remote=world.remote, options=["-s", DID])
    async with sipp:
        call_id = await sipp.guard(world.received())
        await world.answer(call_id)
        result = await sipp.wait()
    result.assert_ok()
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED"]
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")


# -- UDP: lost messages, and the one-message answers ------------------------------------------


async def test_retransmissions_recover_lost_messages(world: World, tmp_path: Path):
    """SIPp drops 10% of what it sends and receives: both sides' retransmissions (the gateway's
    200 OK until the ACK, its responses to retransmitted requests) get every call through."""
    await world.static_trunk(source_hosts=["127.0.0.1"])
    calls = 10
    sipp = Sipp(
        "uac_call",
        tmp_path,
        remote=world.remote,
        calls=calls,
        timeout=30,
        options=["-s", DID, "-r", "5", "-lost", "10"],
    )

    async def answer_each() -> list[str]:
        ids = []
        for index in range(calls):
            call_id = await world.received(index, timeout=30)
            await world.answer(call_id)
            ids.append(call_id)
        return ids

    async with sipp:
        call_ids = await sipp.guard(answer_each())
        result = await sipp.wait()
    result.assert_ok(calls)
    for call_id in call_ids:
        events = await world.sequence(call_id)
        assert world.types(call_id) == ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED"]
        assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")
    log = sipp.messages()
    lost = log.count("message lost (recv)") + log.count("voluntary lost (while sending)")
    assert lost > 0, "SIPp lost nothing: -lost 10 had no effect, the test proved nothing"


def raw_request(method: str, port: int, *, to_tag: str = "", drop: str = "", extra: str = "",
                user: str = DID) -> str:  # fmt: skip
    lines = [
        f"{method} sip:{user}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-raw-{method}-{drop or 'x'}{to_tag}",
        "Max-Forwards: 70",
        f"From: <sip:probe@127.0.0.1>;tag=raw{port}",
        f"To: <sip:{user}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: raw-{method}-{to_tag}{drop}@127.0.0.1",
        f"CSeq: 1 {method}",
        "Content-Length: 0",
    ]
    kept = [line for line in lines if not drop or not line.startswith(drop)]
    return "\n".join([*kept[:-1], *([extra] if extra else []), kept[-1]]) + "\n\n"


async def test_single_message_answers(world: World):
    async with udp_client(world.sip_port) as client:
        port = client.local_port
        options = await client.exchange(raw_request("OPTIONS", port))
        assert status_of(options) == 200, options
        assert "Allow:" in options
        unknown = await client.exchange(raw_request("FROBNICATE", port))
        assert status_of(unknown) == 501, unknown
        no_dialog = await client.exchange(raw_request("BYE", port, to_tag="nosuchdialog"))
        assert status_of(no_dialog) == 481, no_dialog
        hops = raw_request("INVITE", port, drop="Max-Forwards", extra="Max-Forwards: 0")
        too_many = await client.exchange(hops)
        assert status_of(too_many) == 483, too_many
        malformed = await client.exchange(raw_request("OPTIONS", port, drop="Call-ID"))
        assert status_of(malformed) == 400, malformed
    assert world.recorder.events() == []


# -- stream transports --------------------------------------------------------------------------


async def test_authenticated_call_over_tcp(world: World, tmp_path: Path):
    trunk = await world.registered_trunk()
    sipp = Sipp("uac_auth_call", tmp_path, remote=world.remote, transport="t1",
                options=calling(world, trunk))  # fmt: skip
    async with sipp:
        call_id = await sipp.guard(world.received())
        await world.answer(call_id)
        result = await sipp.wait()
    result.assert_ok()
    assert "TCP message sent" in sipp.messages()
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED"]
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")


@pytest.mark.skipif(
    not (CERT.exists() and KEY.exists() and CA.exists()),
    reason="no TLS certificate for the gateway: run `make certs`",
)
async def test_authenticated_call_over_tls(world: World, tmp_path: Path):
    """Debian's SIPp 3.6.1 is built without OpenSSL (`-t l1` is refused), so SIPp speaks TCP
    to a loopback relay that carries every byte over a real TLS connection to the gateway's
    TLS port (handshake and server certificate checked against the dev CA)."""
    assert world.gateway.sip.endpoint.transport.addresses.get("TLS"), "the gateway has no TLS"
    trunk = await world.registered_trunk()
    async with tls_relay(world.gateway.settings.sip_tls_port, CA) as relay_port:
        remote = f"127.0.0.1:{relay_port}"
        options = ["-s", DID, "-au", trunk["username"], "-ap", trunk["password"],
                   "-auth_uri", f"{DID}@{remote}"]  # fmt: skip
        sipp = Sipp("uac_auth_call", tmp_path, remote=remote, transport="t1", options=options)
        async with sipp:
            call_id = await sipp.guard(world.received())
            await world.answer(call_id)
            result = await sipp.wait()
    result.assert_ok()
    assert "sips:gateway@" in sipp.messages()  # the gateway's Contact: it knows it is TLS
    events = await world.sequence(call_id)
    assert world.types(call_id) == ["CALL_RECEIVED", "CALL_ESTABLISHED", "CALL_FINISHED"]
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "ENDPOINT")
