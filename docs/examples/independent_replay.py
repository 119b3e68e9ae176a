"""Read Beacon's event log without Beacon's code: verify the hash chain, list the log, and reconstruct one
incident with the stock `eventsourcing` library and an auditor's own classes.

Needs only `eventsourcing[postgres]` (9.5) and Python 3.11; nothing from Beacon is imported.

    python independent_replay.py --database-url postgresql://auditor@db.example/beacon [--incident ID]

`--incident` takes the incident's id as the API shows it (a 26-character ULID) or as a UUID. It prints one
line per check and the incident's reconstructed timeline, and exits 1 if the hash chain is broken.
"""

import argparse
import hashlib
import json
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from eventsourcing.application import Application
from eventsourcing.utils import register_topic

# --- 1. The hash chain, recomputed from the documented canonical form (docs/auditing.md) -------------


def chain_hash(previous: bytes, row: tuple[Any, ...]) -> bytes:
    position, stream_id, version, topic, state, stream_type, recorded_at, actor, request_id = row
    fields = [
        str(position),
        str(stream_id),
        str(version),
        topic,
        stream_type,
        recorded_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        actor,  # the jsonb column as Postgres prints it (selected as actor::text)
        request_id or "",
    ]
    content = "\n".join(f for f in fields if f is not None).encode()
    return hashlib.sha256(previous + content + (bytes(state) if state is not None else b"")).digest()


def verify_chain(conninfo: str) -> bool:
    previous, count = b"", 0
    with psycopg.connect(conninfo) as conn, conn.cursor(name="audit_walk") as cursor:  # server-side cursor
        cursor.itersize = 1000
        cursor.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state, stream_type,"
            " recorded_at, actor::text, request_id, hash FROM beacon_events ORDER BY notification_id"
        )
        for *row, stored in cursor:
            if chain_hash(previous, tuple(row)) != bytes(stored):
                print(f"hash chain BROKEN at position {row[0]} (stream {row[1]} version {row[2]})")
                return False
            previous, count = bytes(stored), count + 1
    print(f"hash chain intact: {count} events, head {previous.hex() or '-'}")
    return True


# --- 2. The library's own application over Beacon's table -------------------------------------------


class Beacon(Application[uuid.UUID]):
    """The stock application whose table is `beacon_events` (the application's name, lowercased)."""


def library_env(database_url: str) -> dict[str, str]:
    """The library's Postgres settings for a libpq URL (TCP, or a unix socket as `?host=/dir`)."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or query["host"][0],
        "POSTGRES_PORT": str(parts.port or query.get("port", ["5432"])[0]),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "CREATE_TABLE": "false",  # an auditor only reads
    }


# --- 3. The auditor's own model of an incident, fed by Beacon's stable event topics -------------------


@dataclass
class AuditedIncident:
    id: uuid.UUID
    status_page_id: str
    name: str
    status: str = ""
    version: int = 0
    timeline: list[str] = field(default_factory=list)


class AuditorEvent:
    """The library's mapper sets the stored state (plus originator_id and originator_version) as this
    object's attributes; `mutate` is all the library's repository asks of an event."""

    originator_id: uuid.UUID
    originator_version: int
    timestamp: datetime
    by: dict[str, Any]

    def mutate(self, incident: AuditedIncident | None) -> AuditedIncident:
        incident = self.apply(incident)
        incident.version = self.originator_version
        return incident

    def apply(self, incident: AuditedIncident | None) -> AuditedIncident:
        raise NotImplementedError

    def who(self) -> str:
        return str(self.by.get("name") or self.by.get("type", "?"))


class Declared(AuditorEvent):
    def apply(self, incident: AuditedIncident | None) -> AuditedIncident:
        incident = AuditedIncident(self.originator_id, self.status_page_id, self.name)  # type: ignore[attr-defined]
        incident.status = self.incident_status  # type: ignore[attr-defined]
        incident.timeline.append(f"{self.timestamp:%Y-%m-%d %H:%M} {self.who()}: declared {incident.name!r}, "
                                 f"{incident.status}: {self.message}")  # type: ignore[attr-defined]
        return incident


class RetrospectiveRecorded(AuditorEvent):
    def apply(self, incident: AuditedIncident | None) -> AuditedIncident:
        incident = AuditedIncident(self.originator_id, self.status_page_id, self.name)  # type: ignore[attr-defined]
        for update in self.updates:  # type: ignore[attr-defined]
            incident.status = update["status"]
            incident.timeline.append(f"{update['published_at']:%Y-%m-%d %H:%M} (retrospective) "
                                     f"{update['status']}: {update['message']}")
        return incident


class UpdatePublished(AuditorEvent):
    def apply(self, incident: AuditedIncident | None) -> AuditedIncident:
        assert incident is not None
        incident.status = self.incident_status  # type: ignore[attr-defined]
        statuses = ", ".join(f"{s['component_id']}={s['component_status']}"
                             for s in self.component_statuses)  # type: ignore[attr-defined]
        incident.timeline.append(f"{self.timestamp:%Y-%m-%d %H:%M} {self.who()}: {incident.status}: "
                                 f"{self.message}" + (f" [{statuses}]" if statuses else ""))  # type: ignore[attr-defined]
        return incident


class Renamed(AuditorEvent):
    def apply(self, incident: AuditedIncident | None) -> AuditedIncident:
        assert incident is not None
        incident.timeline.append(f"{self.timestamp:%Y-%m-%d %H:%M} {self.who()}: renamed "
                                 f"{incident.name!r} -> {self.name!r}")  # type: ignore[attr-defined]
        incident.name = self.name  # type: ignore[attr-defined]
        return incident


for topic, cls in {
    "beacon.Incident.Declared": Declared,
    "beacon.Incident.RetrospectiveRecorded": RetrospectiveRecorded,
    "beacon.Incident.UpdatePublished": UpdatePublished,
    "beacon.Incident.Renamed": Renamed,
}.items():
    register_topic(topic, cls)


def parse_id(text: str) -> uuid.UUID:
    """A ULID (as the API shows ids) or a UUID: the same 128 bits."""
    if len(text) == 26:
        alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
        value = 0
        for char in text.upper():
            value = value * 32 + alphabet.index(char)
        return uuid.UUID(int=value)
    return uuid.UUID(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--incident", help="an incident id (ULID or UUID) to reconstruct")
    args = parser.parse_args(argv)

    if not verify_chain(args.database_url):
        return 1

    app = Beacon(env=library_env(args.database_url))
    try:
        topics: dict[str, int] = {}
        start, total = 1, 0
        while notifications := app.recorder.select_notifications(start=start, limit=500):
            for notification in notifications:
                app.mapper.transcoder.decode(notification.state)  # every state decodes with the stock transcoder
                topics[notification.topic] = topics.get(notification.topic, 0) + 1
            total += len(notifications)
            start = notifications[-1].id + 1
        print(f"read {total} events with the library: " + json.dumps(topics, sort_keys=True))

        if args.incident:
            incident: AuditedIncident = app.repository.get(parse_id(args.incident))
            print(f"incident {args.incident} (version {incident.version}): {incident.name!r}, {incident.status}")
            for line in incident.timeline:
                print("  " + line)
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
