"""The one exception → HTTP map, and the SPEC §1 error envelope every non-2xx response uses,
framework errors (unknown route, 405, 413, 415, malformed JSON) and crashes included."""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from api.request_id import ensure_request_id
from domain.base import DomainError, NotFound, WriteConflict

log = logging.getLogger("beacon.api")

ERROR_TYPES = {
    400: "validation_error",
    401: "authentication_error",
    403: "resource_forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "validation_error",
    422: "validation_error",
    429: "too_many_requests",
}

DOMAIN_STATUS: dict[type[DomainError], int] = {NotFound: 404, WriteConflict: 409}
"""Domain errors that are not 422. Modules that add such errors register them here (see `register`)."""


def register_status(error: type[DomainError], status: int) -> None:
    DOMAIN_STATUS[error] = status


class ErrorSource(msgspec.Struct, omit_defaults=True):
    field: str | None = None


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    source: ErrorSource | None = None


class RateLimit(msgspec.Struct):
    limit: int
    remaining: int
    retry_after: str


class ErrorEnvelope(msgspec.Struct, omit_defaults=True):
    type: str
    status: int
    request_id: str
    errors: list[ErrorDetail]
    rate_limit: RateLimit | None = None


class ApiError(Exception):
    """Raised by controllers for an HTTP error that is not a domain rule (bad cursor, 429, 503 …)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "invalid_value",
        field: str | None = None,
        headers: dict[str, str] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(code=code, message=message, source=ErrorSource(field) if field else None)
        self.headers = headers or {}
        self.rate_limit = rate_limit


def request_id_of(request: Request[Any, Any, Any]) -> str:
    return ensure_request_id(request.scope)  # type: ignore[arg-type]


def envelope_response(
    request: Request[Any, Any, Any],
    status: int,
    errors: list[ErrorDetail],
    *,
    headers: dict[str, str] | None = None,
    rate_limit: RateLimit | None = None,
) -> Response[bytes]:
    body = ErrorEnvelope(
        type=ERROR_TYPES.get(status, "api_error"),
        status=status,
        request_id=request_id_of(request),
        errors=errors,
        rate_limit=rate_limit,
    )
    return Response(
        content=msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers
    )


_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


def _validation_details(error: ValidationException) -> tuple[int, list[ErrorDetail]]:
    """Litestar reports body problems as 400; incident.io answers 422 for a body that parsed but does
    not validate, and 400 only for a body that is not JSON at all."""
    details: list[ErrorDetail] = []
    status = 422
    for item in error.extra if isinstance(error.extra, list) else []:
        message = str(item.get("message", error.detail)) if isinstance(item, dict) else str(item)
        key = item.get("key") if isinstance(item, dict) else None
        if "malformed" in message.lower() or "invalid json" in message.lower():
            status = 400
            details.append(ErrorDetail(code="invalid_json", message=message))
            continue
        missing = _MISSING_FIELD.search(message)
        field = missing.group(1) if missing else (str(key) if key else None)
        if field and field.startswith("$."):
            field = field[2:]
        code = "is_required" if missing else "invalid_value"
        text = f"{field} is required" if missing else message
        details.append(ErrorDetail(code=code, message=text, source=ErrorSource(field) if field else None))
    if not details:
        message = str(error.detail)
        if "json" in message.lower():
            status = 400
        details.append(ErrorDetail(code="invalid_value", message=message))
    return status, details


def handle_http(request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    if isinstance(error, ValidationException):
        status, details = _validation_details(error)
        return envelope_response(request, status, details)
    status = error.status_code
    if status >= 500:
        log.error("request %s failed: %s", request_id_of(request), error.detail)
        return envelope_response(request, status, [ErrorDetail(code="internal_error", message="Internal error")])
    code = ERROR_TYPES.get(status, "invalid_value")
    return envelope_response(
        request, status, [ErrorDetail(code=code, message=str(error.detail))], headers=error.headers
    )


def handle_api_error(request: Request[Any, Any, Any], error: ApiError) -> Response[bytes]:
    return envelope_response(request, error.status, [error.detail], headers=error.headers, rate_limit=error.rate_limit)


def handle_domain(request: Request[Any, Any, Any], error: DomainError) -> Response[bytes]:
    status = next((DOMAIN_STATUS[cls] for cls in type(error).__mro__ if cls in DOMAIN_STATUS), 422)
    source = ErrorSource(error.field) if error.field else None
    return envelope_response(request, status, [ErrorDetail(code=error.code, message=error.message, source=source)])


def handle_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    log.exception("request %s crashed", request_id_of(request), exc_info=error)
    return envelope_response(request, 500, [ErrorDetail(code="internal_error", message="Internal error")])


def handle_recursion(request: Request[Any, Any, Any], error: RecursionError) -> Response[bytes]:
    """msgspec refuses JSON nested deeper than it can decode (issue 6: 10k levels gave a 500): that is a
    malformed body, so 400; any other RecursionError is still a crash."""
    if "deserializing" not in str(error):
        return handle_unexpected(request, error)
    detail = ErrorDetail(code="invalid_json", message="The JSON body is nested too deeply")
    return envelope_response(request, 400, [detail])


def handle_bad_utf8(request: Request[Any, Any, Any], error: UnicodeDecodeError) -> Response[bytes]:
    """A body that is not UTF-8 (SPEC §1) fails inside the JSON decoder; the client sent it, so 400."""
    detail = ErrorDetail(code="invalid_json", message="The request body is not valid UTF-8")
    return envelope_response(request, 400, [detail])


DATABASE_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # Terminated backends, a server shutting down or starting up, a statement timeout (issue 6).
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,  # a terminated pooled connection, see projections.runner
    ConnectionError,
    OSError,
    TimeoutError,
)
RETRY_AFTER_SECONDS = 5


def handle_database_unavailable(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    """Postgres is down or unreachable: answer quickly with 503 and `Retry-After`; nothing was acknowledged."""
    log.warning("request %s: database unavailable: %r", request_id_of(request), error)
    detail = ErrorDetail(code="database_unavailable", message="The database is unavailable; retry shortly")
    return envelope_response(request, 503, [detail], headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    **dict.fromkeys(DATABASE_UNAVAILABLE, handle_database_unavailable),
    ApiError: handle_api_error,
    RecursionError: handle_recursion,
    UnicodeDecodeError: handle_bad_utf8,
    DomainError: handle_domain,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}
