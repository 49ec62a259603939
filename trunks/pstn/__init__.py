"""The simulated PSTN: scripted numbers and callers, so calls need no carrier."""

from trunks.pstn.numbers import Behaviour, SimulatedNumber, default_plan
from trunks.pstn.simulator import SimulatedPstn

__all__ = ["Behaviour", "SimulatedNumber", "SimulatedPstn", "default_plan"]
