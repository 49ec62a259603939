"""STATIC trunk routing: FAILOVER and ROUND_ROBIN host order, hosts marked down by failed calls
and OPTIONS keepalives and up again by answers, and a call moving on from a host that fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.sip.sipp import SIPP, Sipp, outcome, running_world
from trunks.sip.routing import OptionsMonitor, TrunkHealth
from trunks.sip.trunk_store import BillingPackage, Destination, SipTrunk, TrunkConfig


def static_trunk(strategy: str, hosts: list[str], options: bool = False) -> SipTrunk:
    config = TrunkConfig(
        type="STATIC",
        name="t",
        channel_limit=10,
        billing_package=BillingPackage("METERED"),
        destination_hosts=tuple(hosts),
        strategy=strategy,
        sip_options_enabled=options,
    )
    return SipTrunk("trunk-1", config)


HOSTS = ["10.0.0.1:5060", "10.0.0.2:5060", "10.0.0.3:5060"]


def hosts(order: list[Destination]) -> list[str]:
    return [d.host for d in order]


def test_failover_keeps_the_order_and_puts_down_hosts_last():
    health, trunk = TrunkHealth(), static_trunk("FAILOVER", HOSTS)
    assert hosts(health.order(trunk)) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert hosts(health.order(trunk)) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    health.mark(trunk.id, Destination("10.0.0.1", 5060), up=False)
    assert hosts(health.order(trunk)) == ["10.0.0.2", "10.0.0.3", "10.0.0.1"]
    health.mark(trunk.id, Destination("10.0.0.1", 5060), up=True)
    assert hosts(health.order(trunk))[0] == "10.0.0.1"


def test_round_robin_starts_one_host_further_each_call():
    health, trunk = TrunkHealth(), static_trunk("ROUND_ROBIN", HOSTS)
    firsts = [hosts(health.order(trunk))[0] for _ in range(4)]
    assert firsts == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]
    health.mark(trunk.id, Destination("10.0.0.3", 5060), up=False)
    assert hosts(health.order(trunk)) == ["10.0.0.2", "10.0.0.1", "10.0.0.3"]


class SilentEndpoint:
    """An endpoint whose OPTIONS never get an answer: the transaction times out."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_request(self, method, uri, peer, on_response, on_failure, **_kwargs):
        self.sent.append(f"{method} {uri}")
        on_failure(408, "Request Timeout")


def test_options_without_answer_mark_hosts_down():
    health = TrunkHealth()
    trunk = static_trunk("FAILOVER", HOSTS[:2], options=True)
    quiet = static_trunk("FAILOVER", HOSTS[2:], options=False)
    endpoint = SilentEndpoint()
    OptionsMonitor(endpoint, lambda: [trunk, quiet], health).probe_all()  # type: ignore[arg-type]
    assert endpoint.sent == ["OPTIONS sip:10.0.0.1:5060", "OPTIONS sip:10.0.0.2:5060"]
    assert not health.is_up(trunk.id, Destination("10.0.0.1", 5060))
    assert health.is_up(quiet.id, Destination("10.0.0.3", 5060))


sipp_only = pytest.mark.skipif(SIPP is None, reason="SIPp is not installed (make system-deps)")


@sipp_only
async def test_an_options_answer_marks_a_host_up_again(tmp_path: Path):
    async with running_world(tmp_path) as world, Sipp("options_ok", tmp_path) as host:
        trunk = world.gateway.sip_trunks
        body = {
            "type": "STATIC", "name": "kept alive", "channelLimit": 5,
            "billingPackage": {"packageType": "METERED"},
            "destinationHosts": [f"127.0.0.1:{host.port}"], "sipOptions": {"enabled": True},
        }  # fmt: skip
        created = (await world.api.post("/calls/1/sip-trunks", json=body)).json()
        destination = trunk.get(created["id"]).destinations()[0]
        sip = world.gateway.sip
        sip.health.mark(created["id"], destination, up=False)
        sip.options.probe_all()
        async with asyncio.timeout(5):
            while not sip.health.is_up(created["id"], destination):
                await asyncio.sleep(0.02)
        (await host.wait()).assert_ok()


@sipp_only
async def test_a_failing_host_hands_the_call_to_the_next(tmp_path: Path):
    async with (
        running_world(tmp_path) as world,
        Sipp("uas_unavailable", tmp_path) as overloaded,
        Sipp("uas_answer", tmp_path) as healthy,
    ):
        trunk = await world.static_trunk(
            destination_hosts=[f"127.0.0.1:{overloaded.port}", f"127.0.0.1:{healthy.port}"]
        )
        call_id = await world.dial(trunk["id"])
        await healthy.guard(world.recorder.wait_for(types=["CALL_ESTABLISHED"], call_id=call_id))
        await world.hangup(call_id)
        (await overloaded.wait()).assert_ok()
        (await healthy.wait()).assert_ok()
        events = await world.sequence(call_id)
        # The next call skips the host that failed: it is down until it answers again.
        order = world.gateway.sip.health.order(world.gateway.sip_trunks.get(trunk["id"]))
    assert [e["type"] for e in events] == [
        "CALL_STARTED", "CALL_RINGING", "CALL_ESTABLISHED", "CALL_FINISHED"
    ]  # fmt: skip
    assert outcome(events) == ("FINISHED", "NORMAL_HANGUP", "API")
    assert order[0].port == healthy.port
