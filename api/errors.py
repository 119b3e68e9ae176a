"""The one exception → HTTP map, and the error envelope every non-2xx `/v2` response uses (see
docs/architecture.md), framework errors (unknown route, 405, 413, 415, malformed JSON) and crashes
included. Its shape is the one incident.io's SDK parses: every `source` has `field` and `pointer`, a 429
has a complete `rate_limit`, and `type` is one of the SDK's `ErrorResponseType` values."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import asyncpg
import msgspec
from litestar import Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from api.request_id import ensure_request_id
from api.types import AnyRequest
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
    415: "invalid_request_error",
    422: "validation_error",
    429: "too_many_requests",
}

DOMAIN_STATUS: dict[type[DomainError], int] = {NotFound: 404, WriteConflict: 409}
"""Domain errors that are not 422. Modules that add such errors register them here (see `register`)."""


def register_status(error: type[DomainError], status: int) -> None:
    DOMAIN_STATUS[error] = status


class ErrorSource(msgspec.Struct):
    """Where the error is, twice: `field` as a JSON path (`component_statuses[0].component_id`) or a query
    parameter's name, and `pointer` as RFC 6901 (`/component_statuses/0/component_id`) or `?name`.
    incident.io's SDK reads both and raises `KeyError` on a source without `pointer`."""

    field: str
    pointer: str

    @classmethod
    def at(cls, path: Sequence[str | int]) -> ErrorSource:
        """The body location given as its keys and list indexes, outermost first."""
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).removeprefix(".")
        pointer = "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
        return cls(field=field, pointer=pointer)

    @classmethod
    def body(cls, field: str) -> ErrorSource:
        """The body location named by a JSON path such as `updates[1].component_statuses[0].component_id`."""
        return cls.at([int(index) if index else key for index, key in _PATH_PART.findall(field)])

    @classmethod
    def parameter(cls, name: str) -> ErrorSource:
        return cls(field=name, pointer=f"?{name}")


_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    source: ErrorSource | None = None


class RateLimit(msgspec.Struct):
    """A 429's `rate_limit`, as incident.io's SDK reads it (every field required): `name` says which limit
    (`api_key`, `retrospective_incidents` or `client_address`), `retry_after` is RFC 3339 UTC."""

    limit: int
    name: str
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
        parameter: str | None = None,
        source: ErrorSource | None = None,
        headers: dict[str, str] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        """`field` names a body field by its JSON path, `parameter` a query parameter; `source` is for a
        location those cannot spell (a field name holding a dot)."""
        super().__init__(message)
        self.status = status
        if source is None and field:
            source = ErrorSource.body(field)
        elif source is None and parameter:
            source = ErrorSource.parameter(parameter)
        self.detail = ErrorDetail(code=code, message=message, source=source)
        self.headers = headers or {}
        self.rate_limit = rate_limit


def request_id_of(request: AnyRequest) -> str:
    return ensure_request_id(request.scope)  # type: ignore[arg-type]


def envelope_response(
    request: AnyRequest,
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
        key = str(item.get("key") or "") if isinstance(item, dict) else ""
        if "malformed" in message.lower() or "invalid json" in message.lower():
            status = 400
            details.append(ErrorDetail(code="invalid_json", message=message))
            continue
        if isinstance(item, dict) and item.get("source") == "query":
            details.append(ErrorDetail(code="invalid_value", message=message, source=ErrorSource.parameter(key)))
            continue
        # msgspec names a body location `$.updates[0]` (Litestar says `data` for the top level); a missing
        # field is named in the message.
        field = "" if key == "data" else key.removeprefix("$").removeprefix(".")
        missing = _MISSING_FIELD.search(message)
        if missing:
            field = f"{field}.{missing.group(1)}" if field else missing.group(1)
            details.append(ErrorDetail(code="is_required", message=f"{field} is required", source=_body(field)))
        else:
            code = "invalid_enum" if message.startswith("Invalid enum value") else "invalid_value"
            details.append(ErrorDetail(code=code, message=message, source=_body(field)))
    if not details:
        message = str(error.detail)
        if "json" in message.lower():
            status = 400
        details.append(ErrorDetail(code="invalid_value", message=message))
    return status, details


def _body(field: str | None) -> ErrorSource | None:
    return ErrorSource.body(field) if field else None


def handle_http(request: AnyRequest, error: HTTPException) -> Response[bytes]:
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


def handle_api_error(request: AnyRequest, error: ApiError) -> Response[bytes]:
    return envelope_response(request, error.status, [error.detail], headers=error.headers, rate_limit=error.rate_limit)


def domain_status(error: DomainError) -> int:
    """The status code a domain error answers: the one registered for its class (or a base), else 422."""
    return next((DOMAIN_STATUS[cls] for cls in type(error).__mro__ if cls in DOMAIN_STATUS), 422)


def handle_domain(request: AnyRequest, error: DomainError) -> Response[bytes]:
    status = domain_status(error)
    detail = ErrorDetail(code=error.code, message=error.message, source=_body(error.field))
    return envelope_response(request, status, [detail])


def handle_unexpected(request: AnyRequest, error: Exception) -> Response[bytes]:
    log.exception("request %s crashed", request_id_of(request), exc_info=error)
    return envelope_response(request, 500, [ErrorDetail(code="internal_error", message="Internal error")])


def handle_recursion(request: AnyRequest, error: RecursionError) -> Response[bytes]:
    """msgspec refuses JSON nested deeper than it can decode (issue 6: 10k levels gave a 500): that is a
    malformed body, so 400; any other RecursionError is still a crash."""
    if "deserializing" not in str(error):
        return handle_unexpected(request, error)
    detail = ErrorDetail(code="invalid_json", message="The JSON body is nested too deeply")
    return envelope_response(request, 400, [detail])


def handle_bad_utf8(request: AnyRequest, error: UnicodeDecodeError) -> Response[bytes]:
    """A body that is not UTF-8 (docs/architecture.md#error-envelope) fails inside the JSON decoder; the client sent
    it, so 400."""
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


def handle_database_unavailable(request: AnyRequest, error: Exception) -> Response[bytes]:
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
