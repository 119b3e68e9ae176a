"""Wire-format helpers every controller shares: ULID ids in paths (anything else names nothing: 404)
and incident.io's management meta."""

from __future__ import annotations

from uuid import UUID

import msgspec

from api.errors import ApiError
from infra.ids import is_ulid, ulid_to_uuid


class Payload(msgspec.Struct, forbid_unknown_fields=True):
    """The base of every `/v2` request body: a field the operation does not accept is a 422 naming it,
    never silently dropped (a misspelt `component_statuses` must not declare an incident without
    impacts). Subclasses list every field incident.io's reference or its SDK accepts, even ones Beacon
    ignores, so clients written for incident.io keep working."""


def path_id(value: str, what: str) -> UUID:
    """The stream id behind a wire id; anything that is not a ULID names nothing, so it is a 404."""
    if not is_ulid(value):
        raise not_found(what, value)
    return ulid_to_uuid(value)


def not_found(what: str, value: str) -> ApiError:
    return ApiError(404, f"No {what} with id {value!r}", code="not_found")


class ManagementMeta(msgspec.Struct):
    """incident.io's marker of who manages a resource; Beacon's are all managed through this API and no
    tool claims them, which incident.io reports as its default, `dashboard`."""

    annotations: dict[str, str]
    managed_by: str


def management_meta() -> ManagementMeta:
    return ManagementMeta(annotations={}, managed_by="dashboard")
