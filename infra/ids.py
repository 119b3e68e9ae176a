"""ULIDs: 26-character, time-ordered ids on the wire; the same 128 bits as a UUID in the event store,
whose `originator_id` column is the `eventsourcing` library's uuid."""

from __future__ import annotations

import os
from datetime import datetime
from uuid import UUID

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)} | {c.lower(): i for i, c in enumerate(_ALPHABET)}


def new_ulid(now: datetime) -> str:
    """A new ULID whose first 48 bits are `now` in milliseconds and the rest random."""
    millis = int(now.timestamp() * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return _encode(value)


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_ulid(text: str) -> bool:
    return len(text) == 26 and text[0] in "01234567" and all(c in _DECODE for c in text)


def ulid_to_uuid(text: str) -> UUID:
    """The UUID with the same 128 bits; `ValueError` if `text` is not a ULID."""
    if not is_ulid(text):
        raise ValueError(f"not a ULID: {text!r}")
    value = 0
    for char in text:
        value = (value << 5) | _DECODE[char]
    return UUID(int=value)


_PAIRS = [_ALPHABET[index >> 5] + _ALPHABET[index & 31] for index in range(1024)]
"""Two ULID characters per 10 bits: `uuid_to_ulid` runs ~2.5x faster than `_encode` (projections call it
per event)."""


def uuid_to_ulid(value: UUID) -> str:
    # 130 bits = 13 chunks of 10 (the top two bits of a 128-bit value are 0): exactly `_encode(value.int)`.
    number = value.int
    return "".join([_PAIRS[(number >> shift) & 1023] for shift in range(120, -1, -10)])
