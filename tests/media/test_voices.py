"""The Calls API say language and preferences -> espeak-ng voice mapping: it covers the spec's
enums exactly, names voices espeak-ng has, and rejects the rest naming the field at fault."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.media.voices import (
    LANGUAGES,
    SUPPORTED_LANGUAGES,
    VARIANTS,
    UnsupportedVoice,
    Voice,
    resolve_voice,
    voice_names,
)
from tests import contract

SAY_SCHEMAS = ("PublicSayRequest", "ConferenceSayRequest", "DialogSayRequest", "TextPlayContent")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def _schema(reference: Path, name: str) -> tuple[contract.OpenApiContract, dict]:
    spec = contract.voice(reference)
    schemas = spec.document["components"]["schemas"]
    (schema,) = [s for key, s in schemas.items() if key.endswith("." + name)]
    return spec, schema


def _property(reference: Path, schema_name: str, name: str) -> dict:
    spec, schema = _schema(reference, schema_name)
    parts = [schema, *schema.get("allOf", [])]
    for part in map(spec.resolve, parts):
        if name in part.get("properties", {}):
            return spec.resolve(part["properties"][name])
    raise AssertionError(f"{schema_name} has no {name}")


@pytest.mark.parametrize("schema", SAY_SCHEMAS)
def test_the_language_codes_are_the_spec_enum(reference: Path, schema: str) -> None:
    assert list(LANGUAGES) == _property(reference, schema, "language")["enum"]


def test_the_voice_names_are_the_spec_enum(reference: Path) -> None:
    enum = _property(reference, "PublicSayRequest", "preferences")["properties"]["voiceName"]
    assert voice_names() == frozenset(enum["enum"])
    assert len(voice_names()) == 974


def _espeak_list(kind: str) -> list[list[str]]:
    listing = subprocess.run(
        ["espeak-ng", f"--voices={kind}"] if kind else ["espeak-ng", "--voices"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.split() for line in listing.splitlines()[1:]]


@needs_espeak
def test_every_supported_code_resolves_to_an_installed_voice_and_variant() -> None:
    installed = {row[1] for row in _espeak_list("")}
    variants = {row[-1].removeprefix("!v/") for row in _espeak_list("variant")}
    for code in SUPPORTED_LANGUAGES:
        voice = resolve_voice(code)
        assert voice.language == code
        assert voice.espeak_voice in installed, code
    assert {v for vs in VARIANTS.values() for v in vs if v} <= variants


def test_only_codes_without_an_espeak_voice_are_unsupported() -> None:
    assert [code for code in LANGUAGES if code not in SUPPORTED_LANGUAGES] == ["fil-ph"]
    assert len(SUPPORTED_LANGUAGES) == 79


@pytest.mark.parametrize("code", ["fil-ph", "xx", "EN", ""])
def test_an_unsupported_language_names_the_field_and_lists_the_supported(code: str) -> None:
    with pytest.raises(UnsupportedVoice) as failure:
        resolve_voice(code)
    assert failure.value.field == "language"
    assert failure.value.supported == SUPPORTED_LANGUAGES
    assert isinstance(failure.value, ValueError)
    assert f"language {code!r}" in str(failure.value)
    assert "en-gb, en-gb-wls" in str(failure.value)


def test_regional_codes_share_their_language_voice_and_accents_stay_apart() -> None:
    assert resolve_voice("es-mx").espeak_voice == resolve_voice("es-419").espeak_voice == "es-419"
    assert resolve_voice("es").espeak_voice == "es"
    assert resolve_voice("en").espeak_voice == "en-us"
    assert resolve_voice("en-gb").espeak_voice == "en-gb"
    assert resolve_voice("wls").espeak_voice == "cy"


def test_gender_picks_a_variant_of_that_gender() -> None:
    male, female = resolve_voice("de", "MALE"), resolve_voice("de", "FEMALE")
    assert male.variant in VARIANTS["MALE"] and female.variant in VARIANTS["FEMALE"]
    assert male.espeak_name == "de" and female.espeak_name == "de+f1"
    assert resolve_voice("de") == male  # no preference: espeak-ng's own (male) voice
    assert (male.gender, female.gender) == ("MALE", "FEMALE")


def test_an_unknown_gender_names_the_field() -> None:
    with pytest.raises(UnsupportedVoice) as failure:
        resolve_voice("en", "NEUTRAL")
    assert failure.value.field == "preferences.voiceGender"
    assert failure.value.supported == ["FEMALE", "MALE"]


def test_a_voice_name_always_gives_the_same_voice_of_the_asked_gender() -> None:
    joanna = resolve_voice("en", "FEMALE", "Joanna")
    assert joanna == resolve_voice("en", "FEMALE", "Joanna")
    assert joanna.voice_name == "Joanna" and joanna.variant in VARIANTS["FEMALE"]
    assert resolve_voice("en", None, "Joanna").variant in VARIANTS["MALE"]
    # Names spread over every variant of a gender, so different names sound different.
    for gender, variants in VARIANTS.items():
        picked = {resolve_voice("en", gender, name).variant for name in voice_names()}
        assert picked == set(variants)


def test_a_voice_name_maps_the_same_in_every_process() -> None:
    """Not Python's hash(), which changes with PYTHONHASHSEED."""
    script = (
        "from gateway.media.voices import resolve_voice as r;"
        "print([r('en', g, n).variant for g in ('MALE', 'FEMALE') for n in ('Joanna', 'Hans')])"
    )

    def variants(seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env)
        assert run.returncode == 0, run.stderr
        return run.stdout.decode()

    assert variants("1") == variants("2")


@pytest.mark.parametrize("name", ["Nobody", "joanna", "Joanna "])
def test_a_voice_name_not_in_the_spec_names_the_field(name: str) -> None:
    with pytest.raises(UnsupportedVoice) as failure:
        resolve_voice("en", "FEMALE", name)
    assert failure.value.field == "preferences.voiceName"
    assert "Joanna" in failure.value.supported and len(failure.value.supported) == 974
    assert "Joanna" in str(failure.value)


def test_a_voice_is_a_hashable_value() -> None:
    voice = Voice("en-us", "f2", "en", "FEMALE", "Joanna")
    assert voice.espeak_name == "en-us+f2"
    assert {voice: 1}[Voice("en-us", "f2", "en", "FEMALE", "Joanna")] == 1
