"""Signed tokens in the links of subscriber mails: confirm, manage, unsubscribe
(docs/architecture.md#subscribers); and of read-only `as_of` links (`as_of`, 15 minutes; its subject is a
digest of the link's path and instant, api/as_of.py).

A token is `base64url(purpose byte || subscriber id || expiry) . base64url(HMAC-SHA256)` under a key derived
from `BEACON_SECRET_KEY`: nothing is stored per token, and the same (purpose, subscriber, expiry) always
gives the same token, so a mail retried is byte-identical. `confirm` tokens expire after seven days (and are
single-use: the subscriber is no longer pending once confirmed); `manage` and `unsubscribe` never expire,
since an unsubscribe link must work in a mail read years later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from domain.base import DomainError

Purpose = Literal["confirm", "manage", "unsubscribe", "as_of"]
PURPOSES: dict[str, int] = {"confirm": 1, "manage": 2, "unsubscribe": 3, "as_of": 4}
CONFIRM_VALIDITY = timedelta(days=7)
_NEVER = 0
_PAYLOAD = struct.Struct(">B16sq")


def _key(secret_key: bytes) -> bytes:
    return hmac.new(secret_key, b"beacon subscriber tokens", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret_key: bytes, purpose: Purpose, subscriber_id: UUID, expires_at: datetime | None) -> str:
    """A token for one subscriber and purpose; `expires_at=None` never expires."""
    expiry = _NEVER if expires_at is None else int(expires_at.timestamp())
    payload = _PAYLOAD.pack(PURPOSES[purpose], subscriber_id.bytes, expiry)
    signature = hmac.new(_key(secret_key), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def confirm_token(secret_key: bytes, subscriber_id: UUID, requested_at: datetime) -> str:
    """The confirmation token of a mail sent for a request made at `requested_at`."""
    return sign(secret_key, "confirm", subscriber_id, requested_at + CONFIRM_VALIDITY)


def verify(secret_key: bytes, purpose: Purpose, token: str, *, now: datetime) -> UUID:
    """The subscriber a token was signed for, or `InvalidToken` / `ExpiredToken`. A token of another
    purpose is invalid here (an unsubscribe link cannot confirm)."""
    try:
        encoded_payload, encoded_signature = token.strip().split(".")
        payload, signature = _unb64(encoded_payload), _unb64(encoded_signature)
    except (ValueError, binascii.Error):
        raise InvalidToken("this link is not valid; copy the whole link from the mail") from None
    expected = hmac.new(_key(secret_key), payload, hashlib.sha256).digest()
    if len(payload) != _PAYLOAD.size or not hmac.compare_digest(signature, expected):
        raise InvalidToken("this link is not valid; copy the whole link from the mail")
    kind, subscriber, expiry = _PAYLOAD.unpack(payload)
    if kind != PURPOSES[purpose]:
        raise InvalidToken(f"this link is not a {purpose} link")
    if expiry != _NEVER and now.timestamp() > expiry:
        raise ExpiredToken("this link has expired; subscribe again to get a new one")
    return UUID(bytes=subscriber)


class InvalidToken(DomainError):
    """Raised when a link's token is malformed, forged, or meant for another action."""

    field = "token"
    code = "invalid_token"


class ExpiredToken(DomainError):
    """Raised when a confirmation link is older than seven days."""

    field = "token"
    code = "expired_token"
