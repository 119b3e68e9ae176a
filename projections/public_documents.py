"""What every projection that renders public documents tells the web processes
(docs/architecture.md#notify-channels, docs/architecture.md#5-the-widget-is-bytes): one channel for all of
them, so each process follows every source of documents on one connection, and a payload that names the
source, so a process re-reads only that source's documents.

The payload is `"{source}:{position}:{changed}:{deleted}"` (`"public_widget:4711:2:0"`): the projection's
name, the last position of the batch, and how many documents the batch wrote and removed. It carries no
document keys (a NOTIFY payload is bounded, a batch may touch thousands of documents): the cache re-reads
the source's documents written past the position it has, or all of them after a removal.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import asyncpg

CHANNEL = "beacon_public_documents"


@dataclass(frozen=True)
class DocumentsChanged:
    source: str
    position: int
    changed: int
    deleted: int

    @property
    def payload(self) -> str:
        return f"{self.source}:{self.position}:{self.changed}:{self.deleted}"

    @classmethod
    def parse(cls, payload: str) -> DocumentsChanged:
        source, position, changed, deleted = payload.rsplit(":", 3)
        return cls(source, int(position), int(changed), int(deleted))


async def notify(conn: asyncpg.Connection, change: DocumentsChanged) -> None:
    """In the projection's transaction, so the notification goes out at its commit. Only the live tables tell
    the caches: a rebuild into a scratch or shadow schema (`projections.runner.use_schema` marks its
    transaction) must not move them."""
    await conn.execute(
        "SELECT pg_notify($1, $2) WHERE coalesce(current_setting('beacon.scratch', true), '') = ''",
        CHANNEL,
        change.payload,
    )


COMPRESS_FROM = 1024
"""Documents this large and larger are also kept gzipped; smaller ones would barely shrink."""


def gzipped(body: bytes) -> bytes | None:
    """The gzip representation a document is held in (None below `COMPRESS_FROM`): deterministic bytes (no
    timestamp, a fixed level), so a rebuild stores the same ones."""
    return gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= COMPRESS_FROM else None
