"""Contract checks of JSON bodies against Infobip's own OpenAPI files.

A client must not be able to tell the gateway from the cloud by the JSON, so every body the
gateway produces is validated against the schema Infobip publishes for that operation (or
webhook). Three things go beyond plain JSON Schema, each because these files depend on it:

* ``discriminator`` is only an annotation in OAS 3.1, yet base schemas such as ``Event`` and
  ``CallEndpoint`` declare just the common fields and leave the rest to the mapped subtype; the
  validator here follows the mapping, so ``CALL_FINISHED.properties.callLog`` is checked too.
* ``date-time`` means the wire form Infobip documents and sends, ``2026-01-15T11:59:30.000+0000``
  (spec examples, SDK serialiser), not RFC 3339's ``+00:00``.
* ``strict=True`` reports members no schema declares: the files never close objects with
  ``additionalProperties: false``, so a typo like ``callsConfigurationIDs`` would pass otherwise.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import extend
from openapi_schema_validator import OAS30Validator, OAS31Validator

VOICE = "infobip-voice-openapi.json"
SUBSCRIPTIONS = "infobip-subscriptions-api-openapi.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
INFOBIP_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# (id(instance), mapped $ref) pairs being validated: a subtype's allOf names its base, whose
# discriminator would send the same instance back to the subtype for ever. Validation is
# synchronous and single-threaded in the tests, so a plain set is enough.
_dispatching: set[tuple[int, str]] = set()


def _discriminator(
    validator: Any, discriminator: Mapping[str, Any], instance: Any, _schema: Any
) -> Iterator[ValidationError]:
    """Validate the instance against the schema its discriminating property maps to."""
    if not validator.is_type(instance, "object"):
        return
    value = instance.get(discriminator["propertyName"])
    ref = discriminator.get("mapping", {}).get(value) if isinstance(value, str) else None
    key = (id(instance), ref or "")
    if ref is None or key in _dispatching:
        return  # an unmapped value is the enum's business, not the discriminator's
    _dispatching.add(key)
    try:  # collected eagerly, so that the guard is released even if the caller stops early
        errors = list(validator.descend(instance, {"$ref": ref}))
    finally:
        _dispatching.discard(key)
    yield from errors


def _format_checker(base: FormatChecker) -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checkers = dict(base.checkers)

    @checker.checks("date-time")
    def _infobip_date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not INFOBIP_DATE_TIME.fullmatch(value):
            return False
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")  # a ValueError fails the check
        return True

    return checker


def _validator_class(openapi_version: str) -> Any:
    base = OAS31Validator if openapi_version.startswith("3.1") else OAS30Validator
    return extend(base, {"discriminator": _discriminator})


def json_path(parts: Iterable[Any], path: str = "$") -> str:
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.fullmatch(str(part)):
            path += f".{part}"
        else:
            path += f"[{json.dumps(part)}]"
    return path


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OpenApiContract:
    """One OpenAPI document: finds the schema for a response or webhook and checks a body."""

    def __init__(self, document: dict[str, Any], name: str = "openapi") -> None:
        self.document = document
        self.name = name
        cls = _validator_class(str(document.get("openapi", "3.1")))
        formats = _format_checker(cls.FORMAT_CHECKER)
        # The whole document is the root resource, so ``#/components/...`` resolves anywhere.
        self._root = cls(document, format_checker=formats)
        self._operations = [
            (template, method, template.strip("/").split("/"), operation)
            for template, item in document.get("paths", {}).items()
            for method, operation in item.items()
            if method in METHODS
        ]

    # -- lookup ---------------------------------------------------------------------------

    def resolve(self, node: Any) -> Any:
        """Follow local ``$ref``s (schemas, responses) to the node they point at."""
        seen: set[str] = set()
        while isinstance(node, Mapping) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                raise AssertionError(f"{self.name}: cannot resolve $ref {ref!r}")
            seen.add(ref)
            node = self.document
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        """The path template and operation serving ``method path``; literals beat ``{params}``."""
        segments = urlsplit(path).path.strip("/").split("/")
        candidates = []
        for template, op_method, parts, operation in self._operations:
            if op_method != method.lower() or len(parts) != len(segments):
                continue
            rank = []
            for part, segment in zip(parts, segments, strict=True):
                is_param = part.startswith("{") and part.endswith("}")
                if not is_param and part != segment:
                    break
                rank.append(is_param)
            else:
                candidates.append((rank, template, operation))
        if not candidates:
            raise AssertionError(f"{self.name}: no operation for {method.upper()} {path}")
        _rank, template, operation = min(candidates, key=lambda c: c[0])
        return template, operation

    def response_schema(self, method: str, path: str, status: int) -> tuple[str, Any]:
        """The operationId and the JSON schema of that response (None: no body declared)."""
        _template, operation = self.operation(method, path)
        op_id = operation.get("operationId", f"{method.upper()} {path}")
        responses = operation.get("responses", {})
        key = next(
            (k for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses), None
        )
        if key is None:
            raise AssertionError(
                f"{op_id}: status {status} is not declared for {method.upper()} {path} "
                f"(declared: {', '.join(responses)})"
            )
        content = self.resolve(responses[key]).get("content")
        if not content:
            return op_id, None
        if "application/json" not in content:
            raise AssertionError(f"{op_id}: {status} declares no application/json body")
        return op_id, content["application/json"].get("schema", {})

    def validate_media_type(self, method: str, path: str, status: int, content_type: str) -> None:
        """Assert that a non-JSON answer (a file download) has a media type the spec declares
        for ``method path`` and ``status``."""
        _template, operation = self.operation(method, path)
        op_id = operation.get("operationId", f"{method.upper()} {path}")
        response = self.resolve(operation.get("responses", {}).get(str(status), {}))
        declared = list(response.get("content", {}))
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in declared:
            raise AssertionError(
                f"{op_id}: {status} with {media_type!r}; the spec declares {declared or 'none'}"
            )

    def webhook_schema(self, name: str) -> Any:
        """The request-body schema of webhook ``name`` (``webhooks`` or ``x-webhooks``)."""
        hooks = self.document.get("webhooks") or self.document.get("x-webhooks") or {}
        if name not in hooks:
            raise AssertionError(f"{self.name}: no webhook {name!r}")
        body = self.resolve(hooks[name]["post"]["requestBody"])
        return body["content"]["application/json"]["schema"]

    # -- validation -----------------------------------------------------------------------

    def validate(
        self, method: str, path: str, status: int, body: Any, *, strict: bool = False
    ) -> None:
        """Assert that ``body`` is what the spec lets ``method path`` answer with ``status``."""
        op_id, schema = self.response_schema(method, path, status)
        context = f"{method.upper()} {path} -> {status} (operationId {op_id})"
        if schema is None:
            if body not in (None, b"", ""):
                raise AssertionError(f"{context}: the spec declares no body, got {body!r}")
            return
        self.validate_schema(schema, body, context=context, strict=strict)

    def validate_webhook(self, name: str, body: Any, *, strict: bool = False) -> None:
        self.validate_schema(
            self.webhook_schema(name), body, context=f"webhook {name}", strict=strict
        )

    def validate_schema(
        self, schema: Any, body: Any, *, context: str = "body", strict: bool = False
    ) -> None:
        violations = self.violations(schema, body, strict=strict)
        if violations:
            lines = "\n".join(f"  {where}: {message}" for where, message in violations)
            raise AssertionError(
                f"{context}: {len(violations)} contract violation(s)\n{lines}\n"
                f"body: {_short(json.dumps(body), 2000)}"
            )

    def violations(self, schema: Any, body: Any, *, strict: bool = False) -> list[tuple[str, str]]:
        """Every (json path, message) wrong with ``body``, schema errors first."""
        found = []
        for error in self._root.evolve(schema=schema).iter_errors(body):
            message = _short(error.message)
            if error.context:
                closest = best_match(error.context)
                message += f" (closest: {json_path(closest.absolute_path)}: "
                message += f"{_short(closest.message)})"
            found.append((json_path(error.absolute_path), message))
        found.sort()
        if strict:
            found += [
                (where, "is not declared by the schema (strict)")
                for where in self.undeclared(schema, body)
            ]
        return found

    # -- strictness -----------------------------------------------------------------------

    def undeclared(self, schema: Any, instance: Any, path: str = "$") -> Iterator[str]:
        """JSON paths of the object members that no schema applying to them declares."""
        applicable = list(self._applicable(schema, instance, set()))
        if isinstance(instance, dict):
            declared: dict[str, list[Any]] = {}
            for sub in applicable:
                for key, prop in sub.get("properties", {}).items():
                    declared.setdefault(key, []).append(prop)
            additional = [
                sub["additionalProperties"] for sub in applicable if "additionalProperties" in sub
            ]
            extra = [schema for schema in additional if isinstance(schema, Mapping)]
            # An object schema that names no members at all is a free-form map.
            free_form = True in additional or not (declared or additional)
            for key, value in instance.items():
                child = json_path([key], path)
                schemas = declared.get(key) or extra
                if schemas:
                    yield from self.undeclared({"allOf": schemas}, value, child)
                elif not free_form:
                    yield child
        elif isinstance(instance, list):
            items = [sub["items"] for sub in applicable if isinstance(sub.get("items"), Mapping)]
            if items:
                for index, value in enumerate(instance):
                    yield from self.undeclared({"allOf": items}, value, f"{path}[{index}]")

    def _applicable(self, schema: Any, instance: Any, seen: set[str]) -> Iterator[Any]:
        """The schema and every subschema that applies to this very instance."""
        if isinstance(schema, Mapping) and "$ref" in schema:
            if schema["$ref"] in seen:
                return
            seen.add(schema["$ref"])
        schema = self.resolve(schema)
        if not isinstance(schema, Mapping):
            return
        yield schema
        for sub in schema.get("allOf", ()):
            yield from self._applicable(sub, instance, seen)
        for keyword in ("oneOf", "anyOf"):
            branches = schema.get(keyword, ())
            matching = [b for b in branches if self._root.evolve(schema=b).is_valid(instance)]
            for sub in matching or branches:
                yield from self._applicable(sub, instance, seen)
        discriminator = schema.get("discriminator")
        if discriminator and isinstance(instance, dict):
            value = instance.get(discriminator["propertyName"])
            ref = discriminator.get("mapping", {}).get(value) if isinstance(value, str) else None
            if ref:
                yield from self._applicable({"$ref": ref}, instance, seen)


@functools.cache
def _load(path: Path) -> OpenApiContract:
    return OpenApiContract(json.loads(path.read_text()), path.name)


def load(path: Path | str) -> OpenApiContract:
    """The contract in ``path``, parsed once per process (the voice file is 1.4 MB)."""
    return _load(Path(path).resolve())


def voice(reference: Path) -> OpenApiContract:
    return load(reference / "openapi" / VOICE)


def subscriptions(reference: Path) -> OpenApiContract:
    return load(reference / "openapi" / SUBSCRIPTIONS)
