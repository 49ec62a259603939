"""SIPp against the real gateway on loopback: each test asserts SIPp's outcome (exit code,
statistics, nothing unexpected in its error log) and the Calls API side (the exact CALL_*
events, states, error codes and hangup sources)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.sip.sipp import (
    SIPP,
    World,
    run_sipp,
    running_world,
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
