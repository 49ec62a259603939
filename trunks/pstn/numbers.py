"""Simulated numbers: an E.164 number, the behaviour its phone follows, and its options.

The default plan uses the range Ofcom keeps for drama (+44 113 496 0000-0999), so it can never
reach a real subscriber. Times are in milliseconds.

Every behaviour also takes the option ``dtmf``: how the phone takes the digits the platform
sends it. ``inband`` (the default, not listed) hears them as tones, in what it heard;
``rfc4733`` takes them as telephone-events, kept apart (``GET /pstn/1/calls/{id}/dtmf``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.core.numbering import E164


class Behaviour(StrEnum):
    ANSWER = "answer"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    REJECT = "reject"
    FAIL = "fail"
    EARLY_MEDIA = "early-media"
    HANGUP_AFTER = "hangup-after"


# Every option a behaviour takes, with its default; anything else is refused.
OPTIONS: dict[Behaviour, dict[str, int]] = {
    Behaviour.ANSWER: {"ringAfterMs": 0, "answerAfterMs": 2000},
    Behaviour.BUSY: {"delayMs": 500},
    Behaviour.NO_ANSWER: {"ringAfterMs": 0},
    Behaviour.REJECT: {"ringAfterMs": 0, "delayMs": 1000},
    Behaviour.FAIL: {"delayMs": 200, "sipStatus": 502},
    Behaviour.EARLY_MEDIA: {"earlyMediaMs": 3000, "announcementHz": 440},
    Behaviour.HANGUP_AFTER: {"ringAfterMs": 0, "answerAfterMs": 1000, "hangupAfterMs": 5000},
}

DESCRIPTIONS: dict[Behaviour, str] = {
    Behaviour.ANSWER: "rings, then answers after answerAfterMs",
    Behaviour.BUSY: "answers busy (SIP 486) after delayMs",
    Behaviour.NO_ANSWER: "rings and never answers",
    Behaviour.REJECT: "rings, then rejects the call (SIP 603) after delayMs",
    Behaviour.FAIL: "cannot be reached: fails with sipStatus after delayMs",
    Behaviour.EARLY_MEDIA: "plays an announcement tone (announcementHz) as early media (183), "
    "answers after earlyMediaMs",
    Behaviour.HANGUP_AFTER: "answers after answerAfterMs, hangs up hangupAfterMs later",
}


class DtmfMode(StrEnum):
    INBAND = "inband"
    RFC4733 = "rfc4733"


class InvalidNumber(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name} {message}")
        self.field_name = field_name
        self.message = message


@dataclass(frozen=True)
class SimulatedNumber:
    number: str
    behaviour: Behaviour
    options: dict[str, int] = field(default_factory=dict)
    dtmf: DtmfMode = DtmfMode.INBAND  # how the phone takes DTMF sent to it

    @classmethod
    def build(cls, number: str, behaviour: str, options: dict[str, Any] | None = None):
        """Validate and fill in defaults; raise :class:`InvalidNumber` naming the field."""
        if not isinstance(number, str) or not E164.match(number):
            raise InvalidNumber("number", "must be an E.164 number such as 441134960000")
        try:
            kind = Behaviour(behaviour)
        except ValueError:
            known = ", ".join(b.value for b in Behaviour)
            raise InvalidNumber("behaviour", f"must be one of {known}") from None
        allowed = OPTIONS[kind]
        given = dict(options or {})
        dtmf = given.pop("dtmf", DtmfMode.INBAND)
        if dtmf not in tuple(DtmfMode):
            modes = ", ".join(DtmfMode)
            raise InvalidNumber("options.dtmf", f"must be one of {modes}")
        for key, value in given.items():
            if key not in allowed:
                raise InvalidNumber(
                    f"options.{key}", f"is not an option of {kind.value} ({', '.join(allowed)})"
                )
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidNumber(f"options.{key}", "must be a whole number >= 0")
        if not 50 <= given.get("announcementHz", 440) <= 3900:
            raise InvalidNumber("options.announcementHz", "must be a tone of 50-3900 Hz")
        if kind is Behaviour.FAIL and not 300 <= given.get("sipStatus", 502) <= 699:
            raise InvalidNumber("options.sipStatus", "must be a SIP failure status, 300-699")
        return cls(number.lstrip("+"), kind, {**allowed, **given}, DtmfMode(dtmf))

    def as_json(self) -> dict[str, Any]:
        options: dict[str, Any] = dict(self.options)
        if self.dtmf is not DtmfMode.INBAND:
            options["dtmf"] = self.dtmf.value
        return {
            "number": self.number,
            "behaviour": self.behaviour.value,
            "description": DESCRIPTIONS[self.behaviour],
            "options": options,
        }


def default_plan() -> list[SimulatedNumber]:
    """One number per behaviour, so that nothing needs configuring to try a call."""
    return [
        SimulatedNumber.build("441134960000", "answer"),
        SimulatedNumber.build("441134960001", "busy"),
        SimulatedNumber.build("441134960002", "no-answer"),
        SimulatedNumber.build("441134960003", "reject"),
        SimulatedNumber.build("441134960004", "fail"),
        SimulatedNumber.build("441134960005", "early-media"),
        SimulatedNumber.build("441134960006", "hangup-after"),
    ]
