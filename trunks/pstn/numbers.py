"""Simulated numbers: an E.164 number, the behaviour its phone follows, and its options.

The default plan uses the range Ofcom keeps for drama (+44 113 496 0000-0999), so it can never
reach a real subscriber. Times are in milliseconds.

Every behaviour also takes the option ``dtmf``: how the phone takes the digits the platform
sends it. ``inband`` (the default, not listed) hears them as tones, in what it heard;
``rfc4733`` takes them as telephone-events, kept apart (``GET /pstn/1/calls/{id}/dtmf``).
Every behaviour that answers takes ``source`` too: what the phone sends from its answer on (a
:class:`~trunks.pstn.sources.Source`, such as an uploaded recording of a real greeting), in
place of silence or of its greeting.

``human`` and ``machine`` answer as a person or an answering machine would, for machine
detection: their greeting (:mod:`trunks.pstn.greetings`) varies with ``seed``; a machine's
``beep`` is 1 (a beep after the greeting), 0 (none) or absent (the seed decides).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.core.numbering import E164
from trunks.pstn.sources import InvalidSource, Source


class Behaviour(StrEnum):
    ANSWER = "answer"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    REJECT = "reject"
    FAIL = "fail"
    EARLY_MEDIA = "early-media"
    HANGUP_AFTER = "hangup-after"
    HUMAN = "human"
    MACHINE = "machine"


# Every option a behaviour takes, with its default; anything else is refused.
OPTIONS: dict[Behaviour, dict[str, int]] = {
    Behaviour.ANSWER: {"ringAfterMs": 0, "answerAfterMs": 2000},
    Behaviour.BUSY: {"delayMs": 500},
    Behaviour.NO_ANSWER: {"ringAfterMs": 0},
    Behaviour.REJECT: {"ringAfterMs": 0, "delayMs": 1000},
    Behaviour.FAIL: {"delayMs": 200, "sipStatus": 502},
    Behaviour.EARLY_MEDIA: {"earlyMediaMs": 3000, "announcementHz": 440},
    Behaviour.HANGUP_AFTER: {"ringAfterMs": 0, "answerAfterMs": 1000, "hangupAfterMs": 5000},
    Behaviour.HUMAN: {"ringAfterMs": 0, "answerAfterMs": 2000, "seed": 0},
    Behaviour.MACHINE: {"ringAfterMs": 0, "answerAfterMs": 2000, "seed": 0},
}
# Options that are absent unless given.
WITHOUT_DEFAULT: dict[Behaviour, tuple[str, ...]] = {Behaviour.MACHINE: ("beep",)}
ANSWERING = frozenset(OPTIONS) - {Behaviour.BUSY, Behaviour.REJECT, Behaviour.FAIL,
                                   Behaviour.NO_ANSWER}  # fmt: skip

DESCRIPTIONS: dict[Behaviour, str] = {
    Behaviour.ANSWER: "rings, then answers after answerAfterMs",
    Behaviour.BUSY: "answers busy (SIP 486) after delayMs",
    Behaviour.NO_ANSWER: "rings and never answers",
    Behaviour.REJECT: "rings, then rejects the call (SIP 603) after delayMs",
    Behaviour.FAIL: "cannot be reached: fails with sipStatus after delayMs",
    Behaviour.EARLY_MEDIA: "plays an announcement tone (announcementHz) as early media (183), "
    "answers after earlyMediaMs",
    Behaviour.HANGUP_AFTER: "answers after answerAfterMs, hangs up hangupAfterMs later",
    Behaviour.HUMAN: "answers after answerAfterMs as a person: a short greeting such as "
    "'Hello?', then waits, sometimes speaking again; voice and words vary with seed",
    Behaviour.MACHINE: "answers after answerAfterMs as an answering machine: a greeting of "
    "3-15 s, a beep or not (beep: 1 or 0; by default the seed decides), then silence",
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
    source: Source | None = None  # what it sends once it answers

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
        source = given.pop("source", None)
        if source is not None:
            if kind not in ANSWERING:
                raise InvalidNumber("options.source", f"{kind.value} numbers never answer")
            try:
                source = Source.parse(source)
            except InvalidSource as error:
                raise InvalidNumber(f"options.source.{error.field_name}", error.message) from None
        names = [*allowed, *WITHOUT_DEFAULT.get(kind, ())]
        for key, value in given.items():
            if key not in names:
                raise InvalidNumber(
                    f"options.{key}", f"is not an option of {kind.value} ({', '.join(names)})"
                )
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidNumber(f"options.{key}", "must be a whole number >= 0")
        if given.get("beep", 0) not in (0, 1):
            raise InvalidNumber("options.beep", "must be 1 (a beep) or 0 (none)")
        if not 50 <= given.get("announcementHz", 440) <= 3900:
            raise InvalidNumber("options.announcementHz", "must be a tone of 50-3900 Hz")
        if kind is Behaviour.FAIL and not 300 <= given.get("sipStatus", 502) <= 699:
            raise InvalidNumber("options.sipStatus", "must be a SIP failure status, 300-699")
        return cls(number.lstrip("+"), kind, {**allowed, **given}, DtmfMode(dtmf), source)

    def as_json(self) -> dict[str, Any]:
        options: dict[str, Any] = dict(self.options)
        if self.dtmf is not DtmfMode.INBAND:
            options["dtmf"] = self.dtmf.value
        if self.source is not None:
            options["source"] = self.source.model_dump(exclude_defaults=True)
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
        SimulatedNumber.build("441134960007", "human"),
        SimulatedNumber.build("441134960008", "machine", {"beep": 1}),
        SimulatedNumber.build("441134960009", "machine", {"beep": 0}),
    ]
