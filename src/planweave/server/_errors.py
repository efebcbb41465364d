"""One JSON shape for every error the API answers, FastAPI's own 404/405/422 included.

``{"error": {"code": ..., "message": ..., "details": [...]}}``: the code is one of a small fixed
set a client can switch on, the message is one line a person can act on. Internal errors are
logged with their traceback and answered with a bland message (no detail leaks to the caller).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from planweave.errors import JobBusy, JobNotFound, PlanInvalid, StoreUnavailable, UsageError

__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorCode",
    "ErrorDetail",
    "SafeJSONResponse",
    "dumps",
    "error_payload",
    "error_responses",
    "install_error_handlers",
]

log = logging.getLogger("planweave.server")

ErrorCode = Literal[
    "not_found",
    "validation_error",
    "conflict",
    "unauthorized",
    "forbidden",
    "payload_too_large",
    "rate_limited",
    "tenant_job_limit",
    "tenant_storage_limit",
    "tenant_spend_limit",
    "method_not_allowed",
    "unavailable",
    "artifact_store_unavailable",
    "internal",
]

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_CODE_BY_STATUS: dict[int, ErrorCode] = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    code: ErrorCode
    message: str
    details: list[Any] | None = None


class ErrorBody(BaseModel):
    """Every error response of the API."""

    error: ErrorDetail


_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "How to authenticate: a bearer token",
            "schema": {"type": "string"},
        }
    },
    405: {
        "Allow": {
            "description": "The methods the path takes",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}
_ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The body is not JSON, or its length is malformed",
    401: "No valid API token",
    403: "The token may not read this",
    404: "No such resource (or another tenant's)",
    405: "The path does not take this method",
    409: "The job's state does not allow it",
    413: "The body is over max_body_bytes",
    422: "The request does not validate",
    429: "Over a rate limit, the tenant's event stream limit or one of its quotas",
    503: "The store is unavailable",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses (with the headers each
    carries: ``Retry-After`` on 429, ``WWW-Authenticate`` on 401, ``Allow`` on 405)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": ErrorBody,
            "description": _ERROR_DESCRIPTIONS.get(status, "Error"),
        }
        if status in _ERROR_HEADERS:
            entry["headers"] = _ERROR_HEADERS[status]
        out[status] = entry
    return out


class ApiError(Exception):
    """Raised by a route to answer with an error status and the JSON error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: ErrorCode | None = None,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code: ErrorCode = code or _CODE_BY_STATUS.get(status, "internal")
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_payload(
    code: ErrorCode, message: str, details: list[Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(content: Any) -> bytes:
    """Strict JSON bytes of ``content``, whatever a tool or model put into it.

    Non-finite floats become ``null`` and text that is not valid UTF-8 (lone surrogates) is
    escaped, so a strange task result never turns a read into a 500.
    """
    try:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(_finite(content), ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":")).encode()


class SafeJSONResponse(JSONResponse):
    """JSON responses rendered with ``dumps``."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def _response(
    status: int,
    code: ErrorCode,
    message: str,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> SafeJSONResponse:
    return SafeJSONResponse(
        error_payload(code, message, details), status_code=status, headers=headers
    )


def _validation_details(exc: RequestValidationError) -> list[Any]:
    details = []
    for error in exc.errors()[:50]:
        details.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return details


def _allowed_methods(request: Request) -> str:
    """Every method the request's path takes (each route of a path has one method, so the
    route that refused it would name only its own)."""
    allowed = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with the JSON error shape."""

    async def on_api_error(request: Request, exc: Exception) -> SafeJSONResponse:
        assert isinstance(exc, ApiError)
        return _response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    async def on_http(request: Request, exc: Exception) -> SafeJSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        code = _CODE_BY_STATUS.get(status, "internal" if status >= 500 else "validation_error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if status == 404 and message == "Not Found":
            message = "no such resource"
        headers = dict(exc.headers or {})
        if status == 405:
            headers["Allow"] = _allowed_methods(request)
        return _response(status, code, message, headers=headers)

    async def on_validation(request: Request, exc: Exception) -> SafeJSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = _validation_details(exc)
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"])
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        return _response(422, "validation_error", message, details)

    async def on_plan_invalid(request: Request, exc: Exception) -> SafeJSONResponse:
        assert isinstance(exc, PlanInvalid)
        return _response(422, "validation_error", "invalid plan", list(exc.errors))

    async def on_not_found(request: Request, exc: Exception) -> SafeJSONResponse:
        return _response(404, "not_found", "no such job")

    async def on_busy(request: Request, exc: Exception) -> SafeJSONResponse:
        return _response(409, "conflict", str(exc))

    async def on_usage(request: Request, exc: Exception) -> SafeJSONResponse:
        return _response(422, "validation_error", str(exc))

    async def on_store(request: Request, exc: Exception) -> SafeJSONResponse:
        log.error("store unavailable: %s", exc)
        return _response(503, "unavailable", "the store is unavailable; try again later")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(PlanInvalid, on_plan_invalid)
    app.add_exception_handler(JobNotFound, on_not_found)
    app.add_exception_handler(JobBusy, on_busy)
    app.add_exception_handler(UsageError, on_usage)
    app.add_exception_handler(StoreUnavailable, on_store)
