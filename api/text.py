"""Postgres cannot store the NUL character in text, so a JSON string holding `\\u0000` (a name, a message,
a description, an idempotency key …) must be refused at the door: recorded in the log, it would stop
every projection that stores that text, for good (issue 6: Schemathesis found one in a component name)."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from api.errors import ApiError

# `\u0000` preceded by an even number of backslashes is the escape for NUL; `\\u0000` is the literal text.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


async def refuse_nul_characters(request: Request[Any, Any, Any]) -> None:
    """A `before_request` hook for every `/v2` route: 422 for a JSON body with a NUL character in a string."""
    if request.method in ("POST", "PUT", "PATCH") and _NUL_ESCAPE.search(await request.body()):
        raise ApiError(422, "Text must not contain the NUL character (\\u0000)", code="invalid_value")
