"""Every leg adapter carries every verb of the core's LegAdapter protocol, with its signature:
a verb missing from one adapter would only fail on the first call that needs it."""

from __future__ import annotations

import inspect

import pytest

from gateway.core.ports import LegAdapter
from trunks.pstn.simulator import SimulatedPstn
from trunks.sip.adapter import SipTrunkAdapter
from trunks.sip.carrier import CarrierLegs

VERBS = [
    name
    for name, member in vars(LegAdapter).items()
    if callable(member) and not name.startswith("_")
]


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


@pytest.mark.parametrize("adapter", [SimulatedPstn, SipTrunkAdapter, CarrierLegs])
def test_every_adapter_has_every_verb_with_its_signature(adapter: type) -> None:
    assert "send_dtmf" in VERBS and "redirect_media" in VERBS
    for verb in VERBS:
        implementation = getattr(adapter, verb, None)
        assert callable(implementation), f"{adapter.__name__} has no {verb}"
        expected = parameters(getattr(LegAdapter, verb))
        assert parameters(implementation) == expected, f"{adapter.__name__}.{verb}"
        protocol_async = inspect.iscoroutinefunction(getattr(LegAdapter, verb))
        assert inspect.iscoroutinefunction(implementation) == protocol_async, verb
