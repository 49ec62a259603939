"""RFC 4733 from a real SIP endpoint: SIPp replays the key presses Debian's SIPp ships as
captures, and each reaches the core once (``CallControl.observe_dtmf``)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from gateway.core.leg import Leg
from tests.sip.sipp import DID, SIPP, Sipp, running_world

CAPTURES = Path("/usr/share/sip-tester")  # Debian's sip-tester package
KEYS = {"1": "dtmf_2833_1.pcap", "#": "dtmf_2833_pound.pcap"}

pytestmark = pytest.mark.skipif(
    SIPP is None or not all((CAPTURES / name).exists() for name in KEYS.values()),
    reason="needs SIPp (sip-tester) and the RFC 4733 captures it ships",
)


async def test_key_presses_from_sipp_reach_the_core_once_each(tmp_path: Path) -> None:
    async with running_world(tmp_path) as world:
        await world.static_trunk(source_hosts=["127.0.0.1"])
        keyed: list[tuple[str, str]] = []
        both = asyncio.Event()

        def observe(leg: Leg, digit: str) -> None:
            keyed.append((leg.id, digit))
            if len(keyed) >= 2:
                both.set()

        world.gateway.calls.observe_dtmf(observe)
        sipp = Sipp("uac_rfc4733", tmp_path, remote=world.remote, options=["-s", DID])
        for name in KEYS.values():
            shutil.copy(CAPTURES / name, sipp.cwd / name)
        async with sipp:
            call_id = await sipp.guard(world.received())
            await world.answer(call_id)
            await sipp.guard(asyncio.wait_for(both.wait(), 10))
            result = await sipp.wait()
        result.assert_ok()
        assert keyed == [(call_id, "1"), (call_id, "#")]  # the repeated ends counted no more
