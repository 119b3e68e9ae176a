"""Every response carries `X-Request-Id` (docs/architecture.md#error-envelope), the framework's own 404/405
included, and error envelopes quote the same id. The id lives in the ASGI scope's state, created on first use, and a
`before_send` hook (which Litestar runs for every response) adds the header."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from infra.ids import new_request_id


def ensure_request_id(scope: MutableMapping[str, Any]) -> str:
    state = scope.setdefault("state", {})
    request_id = state.get("request_id")
    if request_id is None:
        request_id = state["request_id"] = new_request_id()
    return str(request_id)


async def add_request_id_header(message: Message, scope: Scope) -> None:
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)["X-Request-Id"] = ensure_request_id(scope)  # type: ignore[arg-type]
