"""The checks every aggregate shares: names, messages, slugs, read-only fields, enum values and times
(docs/architecture.md#limits), with the errors they raise. Pure functions: no state, no I/O.

Rules that belong to one aggregate stay in its module (a maintenance window's time range, a page's
public URL); a check moves here once a second aggregate needs it.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from domain.base import DomainError

MAX_NAME_LENGTH = 200
MAX_MESSAGE_LENGTH = 4096
MAX_SLUG_LENGTH = 63
RESERVED_SLUGS = frozenset({"v2", "api", "schema", "healthz", "readyz", "metrics", "static"})

_SLUG = re.compile(r"[a-z0-9-]{1,63}")

E = TypeVar("E", bound=StrEnum)


def check_name(name: str, *, field: str = "name") -> None:
    """Names are required and at most 200 characters (docs/architecture.md#limits); shared by every named thing."""
    if not name or not name.strip():
        raise NameRequired(f"{field} is required", field=field)
    if len(name) > MAX_NAME_LENGTH:
        raise NameTooLong(f"{field} must be at most {MAX_NAME_LENGTH} characters", field=field)


def check_message(message: str, *, field: str = "message") -> None:
    if not message or not message.strip():
        raise MessageRequired(f"{field} is required", field=field)
    if len(message) > MAX_MESSAGE_LENGTH:
        raise MessageTooLong(f"{field} must be at most {MAX_MESSAGE_LENGTH} characters", field=field)


def check_slug(slug: str, *, field: str = "slug", reserved: frozenset[str] = RESERVED_SLUGS) -> None:
    """Slugs are URL path segments (docs/architecture.md#slugs): lowercase `[a-z0-9-]`, 1-63 chars, not a reserved
    segment."""
    if not slug:
        raise InvalidSlug(f"{field} is required", field=field, code="is_required")
    if len(slug) > MAX_SLUG_LENGTH:
        raise InvalidSlug(f"{field} must be at most {MAX_SLUG_LENGTH} characters", field=field, code="too_long")
    if not _SLUG.fullmatch(slug):
        raise InvalidSlug(f"{field} may contain only lowercase letters, digits and '-'", field=field)
    if slug in reserved:
        raise ReservedSlug(f"{field} {slug!r} is reserved; choose another", field=field)


def check_read_only(field: str, sent: object, stored: object) -> None:
    """A read-only field may come back in a request (so a Show body can be edited and sent back), but only
    as shown: a different value would otherwise be dropped in silence, and the caller would believe it
    changed something."""
    if sent != stored:
        raise ReadOnlyField(f"{field} is read-only: send it as shown, or leave it out", field=field)


def parse_enum(enum: type[E], value: str, *, field: str) -> E:
    """An enum member from its wire value, or a 422 naming the allowed values (docs/architecture.md#error-envelope)."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidEnum(f"{field} must be one of {allowed}", field=field) from None


def check_aware(value: datetime, *, field: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(f"{field} must carry a time zone", field=field)


# Errors


class NameRequired(DomainError):
    """Raised when a name is missing or blank."""

    field = "name"
    code = "is_required"


class NameTooLong(DomainError):
    """Raised when a name is longer than 200 characters."""

    field = "name"
    code = "too_long"


class MessageRequired(DomainError):
    """Raised when an update's message is missing or blank."""

    field = "message"
    code = "is_required"


class MessageTooLong(DomainError):
    """Raised when an update's message is longer than 4096 characters."""

    field = "message"
    code = "too_long"


class InvalidSlug(DomainError):
    """Raised when a slug is empty, too long or not made of lowercase letters, digits and '-'."""

    field = "slug"


class ReservedSlug(DomainError):
    """Raised when a slug is a path segment Beacon itself serves (`api`, `v2`, `healthz` …)."""

    field = "slug"


class ReadOnlyField(DomainError):
    """Raised when a request sends a read-only field (an id, a slug, a component's name in a structure,
    `management_meta`) with a value other than the stored one."""

    code = "read_only"


class InvalidValue(DomainError):
    """Raised when a field holds a value the rules do not allow (an unknown status, a bad time)."""

    code = "invalid_value"


class InvalidEnum(InvalidValue):
    """Raised when a field holds a value outside its documented set (an unknown status)."""

    code = "invalid_enum"
