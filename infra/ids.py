"""ULIDs: 26-character, time-ordered ids on the wire; the same 128 bits as a UUID in the event store,
whose `originator_id` column is the `eventsourcing` library's uuid. Also request ids."""

from __future__ import annotations

import itertools
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


# Request ids: UUID-shaped, a random prefix drawn once per process and a sequence number, so the widget's
# hot path pays no system call per request (uuid4 reads os.urandom each time: ~2 us of a ~22 us request).
_request_prefix = ""
_request_sequence = itertools.count(1)


def _draw_request_prefix() -> None:
    """A fresh 80-bit prefix; also in every forked child (granian forks its workers), so two processes
    never share one."""
    global _request_prefix, _request_sequence
    hex_ = os.urandom(10).hex()
    _request_prefix = f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-"
    _request_sequence = itertools.count(1)


_draw_request_prefix()
os.register_at_fork(after_in_child=_draw_request_prefix)


def new_request_id() -> str:
    """A request id unique across processes and restarts (the prefix) and within a process (the
    sequence): `8-4-4-4-12` hex like a UUID, the last 12 digits counting up."""
    return f"{_request_prefix}{next(_request_sequence):012x}"
