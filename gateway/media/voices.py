"""Which espeak-ng voice speaks a Calls API say request: its ``language`` and ``preferences``.

Each Calls API language code maps to the nearest espeak-ng voice (regional codes espeak-ng
has no accent for share their language's voice); codes with no espeak-ng voice at all are
unsupported. Gender picks an espeak-ng variant (the formant/pitch profiles in
espeak-ng-data/voices/!v); a Calls API ``voiceName`` picks one variant of that gender by a
stable hash, so one name always sounds the same. The table is in docs/voices.md.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

# Calls API language code (the say request's enum, in spec order) -> espeak-ng voice, or None
# where espeak-ng has no voice for the language.
LANGUAGES: dict[str, str | None] = {
    "ar": "ar", "ar-ma": "ar", "ar_xa": "ar", "bg": "bg", "bn": "bn", "bn-in": "bn",
    "ca": "ca", "cmn-cn": "cmn", "cs": "cs", "da": "da", "de": "de", "de-at": "de",
    "de-ch": "de", "el": "el", "en": "en-us", "en-au": "en-gb", "en-ca": "en-us",
    "en-gb": "en-gb", "en-gb-wls": "en-gb", "en-ie": "en-gb", "en-in": "en-gb",
    "en-ph": "en-us", "es": "es", "es-419": "es-419", "es-ar": "es-419", "es-co": "es-419",
    "es-mx": "es-419", "es-us": "es-419", "et-ee": "et", "fi": "fi", "fil-ph": None,
    "fr": "fr-fr", "fr-ca": "fr-fr", "fr-ch": "fr-ch", "gu": "gu", "he": "he", "hi": "hi",
    "hr": "hr", "hu": "hu", "id": "id", "is": "is", "it": "it", "ja": "ja", "kk-kz": "kk",
    "kn": "kn", "ko": "ko", "lt": "lt", "lv": "lv", "ml": "ml", "mr-in": "mr", "ms": "ms",
    "nb-no": "nb", "nl": "nl", "nl-be": "nl", "no": "nb", "pa-in": "pa", "pl": "pl",
    "pt-br": "pt-br", "pt-pt": "pt", "ro": "ro", "ru": "ru", "sk": "sk", "sl": "sl",
    "sr-rs": "sr", "sv": "sv", "sw-ke": "sw", "sw-tz": "sw", "ta": "ta", "te": "te",
    "th": "th", "tr": "tr", "uk": "uk", "ur-in": "ur", "ur-pk": "ur", "uz-uz": "uz",
    "vi": "vi", "wls": "cy", "yue-hk": "yue", "zh-cn": "cmn", "zh-tw": "cmn",
}  # fmt: skip

SUPPORTED_LANGUAGES = [code for code, voice in LANGUAGES.items() if voice is not None]

# espeak-ng variants by gender; None is the voice's own (male) profile, the default.
VARIANTS: dict[str, tuple[str | None, ...]] = {
    "MALE": (None, "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"),
    "FEMALE": ("f1", "f2", "f3", "f4", "f5"),
}
DEFAULT_GENDER = "MALE"


@dataclass(frozen=True)
class Voice:
    espeak_voice: str  # e.g. "en-us"
    variant: str | None  # e.g. "f3"; None: the voice's own profile
    language: str  # the Calls API code asked for, e.g. "en-au"
    gender: str  # "MALE" or "FEMALE"
    voice_name: str | None = None  # the Calls API voiceName asked for, if any

    @property
    def espeak_name(self) -> str:
        """The ``-v`` argument of espeak-ng: voice, then ``+variant``."""
        return f"{self.espeak_voice}+{self.variant}" if self.variant else self.espeak_voice


class UnsupportedVoice(ValueError):
    """A say request asks for what espeak-ng cannot speak; ``field`` names the request field."""

    def __init__(self, field: str, value: str, supported: list[str], reason: str) -> None:
        self.field = field
        self.value = value
        self.supported = supported
        super().__init__(f"{field} {value!r} {reason}; supported: {', '.join(supported)}")


@cache
def voice_names() -> frozenset[str]:
    """The Calls API's voiceName enum (voice_names.txt, one name a line, as in the spec)."""
    text = files("gateway.media").joinpath("voice_names.txt").read_text(encoding="utf-8")
    return frozenset(text.splitlines())


def resolve_voice(language: str, gender: str | None = None, voice_name: str | None = None) -> Voice:
    """The voice for a say request's ``language``, ``preferences.voiceGender`` and
    ``preferences.voiceName``; raises :class:`UnsupportedVoice` naming the field at fault."""
    if language not in LANGUAGES:
        raise UnsupportedVoice("language", language, SUPPORTED_LANGUAGES, "is not a language")
    espeak_voice = LANGUAGES[language]
    if espeak_voice is None:
        raise UnsupportedVoice("language", language, SUPPORTED_LANGUAGES, "has no espeak-ng voice")
    if gender is not None and gender not in VARIANTS:
        raise UnsupportedVoice(
            "preferences.voiceGender", gender, sorted(VARIANTS), "is not a gender"
        )
    chosen = gender or DEFAULT_GENDER
    variants = VARIANTS[chosen]
    if voice_name is None:
        return Voice(espeak_voice, variants[0], language, chosen)
    if voice_name not in voice_names():
        raise UnsupportedVoice(
            "preferences.voiceName", voice_name, sorted(voice_names()), "is not a voice name"
        )
    # crc32, not hash(): the same name gives the same variant in every process.
    variant = variants[zlib.crc32(voice_name.encode()) % len(variants)]
    return Voice(espeak_voice, variant, language, chosen, voice_name)
