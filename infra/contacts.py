"""Subscribers' contacts kept out of the log in clear: crypto-shredding and a blind index
(docs/architecture.md#subscribers).

Each subscriber has its own AES-256-GCM key in `beacon_subscriber_keys`, a mutable table outside the
append-only log. Events carry the contact as `"v1:" + base64(nonce || ciphertext)`; erasing a subscriber
deletes its key, which turns every copy of that ciphertext — in the log, in read models, in backups taken
before the erasure once `purge_erased` has run on them — into noise, while the hash chain and replays stay
intact.

Lookups by address (a duplicate subscription, an import that must be idempotent) go through a blind
index: an HMAC-SHA256 of the channel and the normalised contact under a key derived from
`BEACON_SECRET_KEY`, stored in `beacon_subscriber_lookup` beside the subscriber holding it. Without the
secret key the index tells nothing about the address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.subscriber import CONTACT_PREFIX

ERASED_TOPIC = "beacon.Subscriber.Erased"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class Contact:
    """A subscriber's contact in clear: an email address, or a webhook URL with its signing secret (and,
    for 24 hours after a rotation, the previous secret)."""

    email: str | None = None
    url: str | None = None
    secret: str | None = None
    previous_secret: str | None = None
    previous_valid_until: datetime | None = None


def new_key() -> bytes:
    """A fresh per-subscriber key (AES-256)."""
    return AESGCM.generate_key(bit_length=256)


def encrypt(key: bytes, contact: Contact) -> str:
    """The contact as events carry it. A fresh random nonce per call, so encrypting the same contact twice
    gives two different strings (the log cannot be searched for a known address)."""
    data = asdict(contact)
    if contact.previous_valid_until is not None:
        data["previous_valid_until"] = contact.previous_valid_until.isoformat()
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(data, separators=(",", ":")).encode(), None)
    return CONTACT_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")


def decrypt(key: bytes, ciphertext: str) -> Contact:
    """The contact `encrypt` sealed; `ValueError` if it is not one sealed under this key."""
    if not ciphertext.startswith(CONTACT_PREFIX):
        raise ValueError("not a contact ciphertext")
    raw = base64.b64decode(ciphertext[len(CONTACT_PREFIX) :])
    try:
        plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None)
    except InvalidTag:
        raise ValueError("contact ciphertext does not open under this key") from None
    data: dict[str, Any] = json.loads(plain)
    until = data.get("previous_valid_until")
    return Contact(
        email=data.get("email"),
        url=data.get("url"),
        secret=data.get("secret"),
        previous_secret=data.get("previous_secret"),
        previous_valid_until=datetime.fromisoformat(until) if until else None,
    )


def blind_index(secret_key: bytes, channel: str, value: str) -> bytes:
    """The lookup key of a normalised contact (an email address as `domain.subscriber.check_email` returns
    it, a webhook URL as given). A key of its own, derived from the secret key, so an index value is never
    also a valid token signature."""
    index_key = hmac.new(secret_key, b"beacon subscriber blind index", hashlib.sha256).digest()
    return hmac.new(index_key, f"{channel}\x00{value}".encode(), hashlib.sha256).digest()


async def store_key(conn: asyncpg.Connection | asyncpg.Pool, subscriber_id: UUID, key: bytes, contact: str) -> None:
    """Keep a new subscriber's key (and its current ciphertext) before its `Created` event is appended: a
    key whose event never made it is harmless, an event without its key would be unreadable."""
    await conn.execute(
        "INSERT INTO beacon_subscriber_keys (subscriber_id, key, contact) VALUES ($1, $2, $3)"
        " ON CONFLICT (subscriber_id) DO UPDATE SET key = EXCLUDED.key, contact = EXCLUDED.contact",
        subscriber_id,
        key,
        contact,
    )


async def load_key(conn: asyncpg.Connection | asyncpg.Pool, subscriber_id: UUID) -> bytes | None:
    key: bytes | None = await conn.fetchval(
        "SELECT key FROM beacon_subscriber_keys WHERE subscriber_id = $1", subscriber_id
    )
    return key


async def replace_contact(conn: asyncpg.Connection | asyncpg.Pool, subscriber_id: UUID, contact: str) -> None:
    """The current ciphertext after a secret rotation (the key stays)."""
    await conn.execute(
        "UPDATE beacon_subscriber_keys SET contact = $2 WHERE subscriber_id = $1", subscriber_id, contact
    )


async def load_contacts(
    conn: asyncpg.Connection | asyncpg.Pool, subscriber_ids: Iterable[UUID]
) -> dict[UUID, Contact | None]:
    """Each subscriber's contact in clear; None for an erased (or unknown) subscriber, whose key is gone."""
    ids = list(dict.fromkeys(subscriber_ids))
    contacts: dict[UUID, Contact | None] = dict.fromkeys(ids)
    rows = await conn.fetch(
        "SELECT subscriber_id, key, contact FROM beacon_subscriber_keys WHERE subscriber_id = ANY($1::uuid[])", ids
    )
    for row in rows:
        if row["contact"] is not None:
            contacts[row["subscriber_id"]] = decrypt(row["key"], row["contact"])
    return contacts


async def find(
    conn: asyncpg.Connection | asyncpg.Pool, status_page_id: UUID, channel: str, index: bytes
) -> UUID | None:
    """The subscriber holding a contact's place on a page, if any."""
    found: UUID | None = await conn.fetchval(
        "SELECT subscriber_id FROM beacon_subscriber_lookup"
        " WHERE status_page_id = $1 AND channel = $2 AND blind_index = $3",
        status_page_id,
        channel,
        index,
    )
    return found


async def claim(
    conn: asyncpg.Connection, status_page_id: UUID, channel: str, index: bytes, subscriber_id: UUID
) -> UUID:
    """Make `subscriber_id` the holder of a contact's place on a page unless another subscriber holds it;
    returns the holder. Callers lock the place first (`lock_place`) and replace a holder that has ended."""
    holder: UUID = await conn.fetchval(
        "INSERT INTO beacon_subscriber_lookup (status_page_id, channel, blind_index, subscriber_id)"
        " VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (status_page_id, channel, blind_index) DO UPDATE"
        " SET subscriber_id = beacon_subscriber_lookup.subscriber_id"
        " RETURNING subscriber_id",
        status_page_id,
        channel,
        index,
        subscriber_id,
    )
    return holder


async def replace_holder(
    conn: asyncpg.Connection, status_page_id: UUID, channel: str, index: bytes, subscriber_id: UUID
) -> None:
    """Give a contact's place to a new subscriber (the previous holder unsubscribed)."""
    await conn.execute(
        "UPDATE beacon_subscriber_lookup SET subscriber_id = $4"
        " WHERE status_page_id = $1 AND channel = $2 AND blind_index = $3",
        status_page_id,
        channel,
        index,
        subscriber_id,
    )


async def lock_place(conn: asyncpg.Connection, status_page_id: UUID, channel: str, index: bytes) -> None:
    """Serialise the subscriptions of one contact on one page until the transaction ends, so two
    simultaneous sign-ups of one address make one subscriber."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"subscriber:{status_page_id}:{channel}:{index.hex()}",
    )


async def erase(conn: asyncpg.Connection, subscriber_id: UUID) -> None:
    """Delete everything outside the log that could give the contact back: the key (and the ciphertext
    beside it), the blind-index row, and the SMTP replies recorded for its deliveries (a relay's reply
    often quotes the recipient)."""
    await conn.execute("DELETE FROM beacon_subscriber_keys WHERE subscriber_id = $1", subscriber_id)
    await conn.execute("DELETE FROM beacon_subscriber_lookup WHERE subscriber_id = $1", subscriber_id)
    if await conn.fetchval("SELECT to_regclass('beacon_notification_attempts') IS NOT NULL"):
        await conn.execute(
            "UPDATE beacon_notification_attempts SET smtp_reply = NULL"
            " WHERE subscriber_id = $1 AND smtp_reply IS NOT NULL",
            subscriber_id,
        )


def erase_mail(mail_dir: Path, subscriber_id: UUID) -> None:
    """Delete the `.eml` files written for a subscriber (`{mail_dir}/{subscriber_id}/`)."""
    folder = mail_dir / str(subscriber_id)
    if folder.is_dir():
        shutil.rmtree(folder)


async def purge_erased(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """Re-delete the keys and lookup rows of every subscriber the log says was erased; run by every
    process at start, so a database restored from a backup taken before an erasure stays erased.
    Returns how many keys it deleted."""
    deleted = await conn.fetch(
        "DELETE FROM beacon_subscriber_keys k USING beacon_events e"
        " WHERE e.topic = $1 AND e.originator_id = k.subscriber_id RETURNING k.subscriber_id",
        ERASED_TOPIC,
    )
    await conn.execute(
        "DELETE FROM beacon_subscriber_lookup l USING beacon_events e"
        " WHERE e.topic = $1 AND e.originator_id = l.subscriber_id",
        ERASED_TOPIC,
    )
    return len(deleted)
