"""A msgspec transcoder for the `eventsourcing` library's `Mapper` whose bytes are the stock
`JSONTranscoder`'s format, so an auditor can read Beacon's log with the unmodified library
(docs/architecture.md#1-library-compatible-log).

msgspec encodes datetimes, UUIDs and Decimals natively (RFC 3339 / canonical strings) and never asks
a hook about them, so this transcoder first wraps those values in the stock
`{"_type_": name, "_data_": value}` envelope itself, with the stock transcodings' own `encode`, and
unwraps the envelope after decoding. The JSON parsing and printing, the expensive part, stays in msgspec.
"""

from __future__ import annotations

from typing import Any

import msgspec
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    Transcoder,
    Transcoding,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)

_NATIVE: frozenset[type] = frozenset({str, int, float, bool, type(None)})


class MsgspecTranscoder(Transcoder):
    """Drop-in for `eventsourcing.persistence.JSONTranscoder` (same bytes on the wire for
    JSON-native values, datetimes, UUIDs and Decimals), encoding and decoding with msgspec."""

    def __init__(self) -> None:
        self.types: dict[type, Transcoding] = {}
        self.names: dict[str, Transcoding] = {}
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            self.register(transcoding)

    def register(self, transcoding: Transcoding) -> None:
        """Add a transcoding, as on the stock transcoder (register the same one there to read it)."""
        self.types[transcoding.type] = transcoding
        self.names[transcoding.name] = transcoding

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(self._wrap(obj))

    def decode(self, data: bytes) -> Any:
        return self._unwrap(self._decoder.decode(data))

    def _wrap(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in _NATIVE:
            return obj
        if kind is dict:
            return {key: self._wrap(value) for key, value in obj.items()}
        if kind is list or kind is tuple:
            return [self._wrap(value) for value in obj]
        transcoding = self.types.get(kind)
        if transcoding is not None:
            return {"_type_": transcoding.name, "_data_": self._wrap(transcoding.encode(obj))}
        if isinstance(obj, (str, int)):
            # str/int subclasses (StrEnum, IntEnum): the stock json module writes their plain value.
            return str.__str__(obj) if isinstance(obj, str) else int.__int__(obj)
        # Same exact-type rule as the stock transcoder, so nothing is written that it cannot read.
        raise TranscodingNotRegisteredError(
            f"Object of type {kind} is not serializable. Please define and register "
            "a custom transcoding for this type."
        )

    def _unwrap(self, obj: Any) -> Any:
        # In place: msgspec built these containers for us alone, and rebuilding them costs more than
        # the JSON parsing itself.
        kind = type(obj)
        if kind is dict:
            for key, value in obj.items():
                if type(value) is dict or type(value) is list:
                    obj[key] = self._unwrap(value)
            if len(obj) == 2 and "_type_" in obj and "_data_" in obj:
                name = obj["_type_"]
                transcoding = self.names.get(name)
                if transcoding is None:
                    raise TranscodingNotRegisteredError(
                        f"Data serialized with name '{name}' is not deserializable. "
                        "Please register a custom transcoding for this type."
                    )
                return transcoding.decode(obj["_data_"])
        elif kind is list:
            for index, value in enumerate(obj):
                if type(value) is dict or type(value) is list:
                    obj[index] = self._unwrap(value)
        return obj
