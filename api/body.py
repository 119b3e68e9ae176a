"""What every `/v2` JSON body must pass before Litestar decodes it into the handler's `data`.

- No NUL character. Postgres cannot store it in text, so a JSON string holding `\\u0000` (a name, a
  message, a description, an idempotency key …) must be refused at the door: recorded in the log, it
  would stop every projection that stores that text, for good (issue 6: Schemathesis found one in a
  component name).
- No value that only fits its field after coercion. Litestar converts the body with msgspec's lax
  rules (its query and path parameters arrive as strings and need them), which take `0` for `false` and
  `"1"` for `1`; the documented types are strict, so such a body gets the 422 a wrong type gets
  (Schemathesis: `"widget_api_enabled": 0` was accepted).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

from api.errors import ApiError

# `\u0000` preceded by an even number of backslashes is the escape for NUL; `\\u0000` is the literal text.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_PATH = re.compile(r" - at `(\$[^`]*)`$")


async def check_json_body(request: Request[Any, Any, Any]) -> None:
    """A `before_request` hook for every `/v2` route (see the module docstring)."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = await request.body()
    if _NUL_ESCAPE.search(body):
        raise ApiError(422, "Text must not contain the NUL character (\\u0000)", code="invalid_value")
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is not None:
        _refuse_coerced_values(body, data.annotation)


def _refuse_coerced_values(body: bytes, data_type: Any) -> None:
    try:
        msgspec.json.decode(body, type=data_type, strict=True)
    except msgspec.ValidationError as strict_error:
        try:
            msgspec.json.decode(body, type=data_type, strict=False)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return  # wrong under either rule: Litestar reports it as it always does
        message = str(strict_error)
        path = _PATH.search(message)
        key = path.group(1) if path else "$"
        raise ValidationException(extra=[{"key": key, "message": message}]) from strict_error
    except (msgspec.DecodeError, RecursionError):
        return  # not JSON (or nested too deeply): Litestar's own decoding answers 400
