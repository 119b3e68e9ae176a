"""Type aliases the API layer shares."""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Request

AnyRequest: TypeAlias = Request[Any, Any, Any]
"""A Litestar request whatever its user, auth and state types: Beacon reads those through `request.state`
and `services_of`, so handlers need not spell the three parameters."""
