"""Errors in the Calls API shape: ``{"requestError": {"serviceException": {...}}}``."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_MESSAGE_IDS = {
    400: ("BAD_REQUEST", "Bad request"),
    401: ("UNAUTHORIZED", "Unauthorized"),
    403: ("FORBIDDEN", "Forbidden"),
    404: ("NOT_FOUND", "Not found"),
    405: ("BAD_REQUEST", "Method not allowed"),
    409: ("CONFLICT", "Conflict"),
    415: ("BAD_REQUEST", "Unsupported media type"),
    416: ("RANGE_NOT_SATISFIABLE", "Range not satisfiable"),
    429: ("TOO_MANY_REQUESTS", "Too many requests"),
    500: ("GENERAL_ERROR", "Something went wrong. Please contact support."),
}


class ApiError(Exception):
    """An error answered to the client; ``validation_errors`` names the offending fields."""

    def __init__(
        self,
        status: int,
        text: str | None = None,
        validation_errors: dict[str, list[str]] | None = None,
    ) -> None:
        message_id, default_text = _MESSAGE_IDS.get(status, ("GENERAL_ERROR", "Error"))
        super().__init__(text or default_text)
        self.status = status
        self.message_id = message_id
        self.text = text or default_text
        self.validation_errors = validation_errors

    def body(self) -> dict[str, Any]:
        exception: dict[str, Any] = {"messageId": self.message_id, "text": self.text}
        if self.validation_errors:
            exception["validationErrors"] = self.validation_errors
        return {"requestError": {"serviceException": exception}}


def bad_request(field: str, message: str) -> ApiError:
    return ApiError(400, f"Request is invalid: {field} {message}.", {field: [message]})


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"{kind} {ident!r} was not found.")


def _field_name(location: tuple[Any, ...], kind: str) -> str:
    if kind == "json_invalid":
        return "body"  # the location is the parser's character offset, not a field
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "must not be null"
    if kind == "json_invalid":
        return "is not valid JSON"
    if kind == "extra_forbidden":
        return "is not a known field"
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")


async def api_error_handler(_request: Request, exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'App realm="gateway"'} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def validation_error_handler(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        errors.setdefault(
            _field_name(tuple(error.get("loc", ())), error.get("type", "")), []
        ).append(_validation_message(error))
    fields = ", ".join(sorted(errors))
    return JSONResponse(ApiError(400, f"Request is invalid: {fields}.", errors).body(), 400)


async def http_error_handler(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    error = ApiError(exc.status_code, str(exc.detail) if exc.detail else None)
    return JSONResponse(error.body(), status_code=exc.status_code)


async def unexpected_error_handler(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse(ApiError(500).body(), status_code=500)


def install(app) -> None:
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
