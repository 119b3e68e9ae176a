"""What every `/v2` request must pass before Litestar decodes it into the handler's arguments.

- No query parameter the operation does not declare, and no body field it does not accept, at any
  depth: a misspelt `component_statuses` would otherwise declare an incident without impacts, and a
  misspelt `component_id` filter would answer the unfiltered list. Either is a 422 naming it, with the
  name meant when one is close, as Stripe does. (Public routes are not under `/v2` and stay lenient.)
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

import difflib
import re
import weakref
from collections.abc import Iterable
from typing import Any

import msgspec
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.routes import HTTPRoute

from api.errors import ApiError, ErrorSource
from api.types import AnyRequest

# `\u0000` preceded by an even number of backslashes is the escape for NUL; `\\u0000` is the literal text.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_PATH = re.compile(r" - at `(\$[^`]*)`$")
# msgspec names the object holding the field (`$.component_statuses[0]`), except at the top level.
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.*?)`(?: - at `\$([^`]*)`)?$", re.DOTALL)
_PATH_PART = re.compile(r"\[(\d+)\]|\.([^.\[]+)")

_accepted_parameters: weakref.WeakKeyDictionary[BaseRouteHandler, frozenset[str]] = weakref.WeakKeyDictionary()
"""The query parameters each route handler declares (its own and its dependencies'), found once."""


async def check_json_body(request: AnyRequest) -> None:
    """A `before_request` hook for every `/v2` route (see the module docstring)."""
    _refuse_unknown_parameters(request)
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = await request.body()
    if _NUL_ESCAPE.search(body):
        raise ApiError(422, "Text must not contain the NUL character (\\u0000)", code="invalid_value")
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is not None:
        _refuse_unknown_and_coerced(body, data.annotation)


def _refuse_unknown_parameters(request: AnyRequest) -> None:
    if request.method == "OPTIONS":
        # Litestar answers OPTIONS itself, with a handler it makes per route that declares nothing (and
        # cannot be weakly referenced); a parameter there changes no answer.
        return
    accepted = _accepted_parameters.get(request.route_handler)
    if accepted is None:
        accepted = _accepted_parameters[request.route_handler] = _declared_query(request)
    for name in request.query_params:
        if name not in accepted:
            raise _unknown("parameter", name, accepted, ErrorSource.parameter(name))


def _declared_query(request: AnyRequest) -> frozenset[str]:
    """Read from the kwargs model Litestar built for the handler, so a parameter a dependency declares
    (the list filters in `api.notices`) counts as the handler's own."""
    for route in request.app.routes:
        if isinstance(route, HTTPRoute):
            for handler, kwargs_model in route.route_handler_map.values():
                if handler is request.route_handler:
                    return frozenset(param.field_alias for param in kwargs_model.expected_query_params)
    return frozenset()


def _unknown(what: str, name: str, accepted: Iterable[str], source: ErrorSource) -> ApiError:
    """The 422 for an unknown `field` or query `parameter`, suggesting the closest accepted name."""
    message = f"unknown {'query parameter' if what == 'parameter' else what} {name!r}"
    meant = difflib.get_close_matches(name, sorted(accepted), n=1)
    if meant:
        message += f"; did you mean {meant[0]!r}?"
    return ApiError(422, message, code=f"unknown_{what}", source=source)


def _refuse_unknown_and_coerced(body: bytes, data_type: Any) -> None:
    try:
        msgspec.json.decode(body, type=data_type, strict=True)
    except msgspec.ValidationError as strict_error:
        message = str(strict_error)
        unknown = _UNKNOWN_FIELD.match(message)
        if unknown:
            name, at = unknown.groups()
            path: list[str | int] = [int(index) if index else key for index, key in _PATH_PART.findall(at or "")]
            source = ErrorSource.at([*path, name])
            raise _unknown("field", name, _fields_at(data_type, path), source) from strict_error
        try:
            msgspec.json.decode(body, type=data_type, strict=False)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return  # wrong under either rule: Litestar reports it as it always does
        path_match = _PATH.search(message)
        key = path_match.group(1) if path_match else "$"
        raise ValidationException(extra=[{"key": key, "message": message}]) from strict_error
    except (msgspec.DecodeError, RecursionError):
        return  # not JSON (or nested too deeply): Litestar's own decoding answers 400


def _fields_at(data_type: Any, path: list[str | int]) -> set[str]:
    """The field names the body's type accepts at `path` (in every struct a union there may hold)."""
    types = _concrete([msgspec.inspect.type_info(data_type)])
    for part in path:
        children: list[msgspec.inspect.Type] = []
        for node in types:
            if isinstance(node, msgspec.inspect.StructType) and isinstance(part, str):
                children += [field.type for field in node.fields if field.encode_name == part]
            elif isinstance(node, msgspec.inspect.ListType | msgspec.inspect.VarTupleType) and isinstance(part, int):
                children.append(node.item_type)
        types = _concrete(children)
    structs = [node for node in types if isinstance(node, msgspec.inspect.StructType)]
    return {field.encode_name for struct in structs for field in struct.fields}


def _concrete(types: list[msgspec.inspect.Type]) -> list[msgspec.inspect.Type]:
    """Unwrap `Annotated` metadata and unions, which a path does not name."""
    result: list[msgspec.inspect.Type] = []
    for node in types:
        if isinstance(node, msgspec.inspect.Metadata):
            result += _concrete([node.type])
        elif isinstance(node, msgspec.inspect.UnionType):
            result += _concrete(list(node.types))
        else:
            result.append(node)
    return result
