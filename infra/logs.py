"""Structured logs (README "Operations"): every record of a Beacon process — Beacon's own, granian's,
asyncpg's — goes to stderr through one formatter, `json` (one object per line, for a log collector) or `text`
(for a person at a terminal). Fields a record carries in `extra={"fields": {...}}` become JSON keys, or
`key=value` pairs in text. api/request_log.py writes the per-request line.

Kept apart from the API so that the CLI can configure logging before anything imports prometheus-client
(api/metrics.py says why that order matters)."""

from __future__ import annotations

import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec


def resolve_log_format(setting: str | None) -> str:
    """`BEACON_LOG_FORMAT`, or `text` for a person at a terminal and `json` for a log collector."""
    if setting is not None:
        return setting
    return "text" if sys.stderr.isatty() else "json"


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = getattr(record, "fields", {})
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time`, `level`, `logger`, `message`, the record's `fields`, and `exception`
    (the traceback as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value…` (fields the message already says are left out), for terminals."""

    def format(self, record: logging.LogRecord) -> str:
        shown: tuple[str, ...] = getattr(record, "in_message", ())
        extra = "".join(f" {key}={value}" for key, value in _fields(record).items() if key not in shown)
        line = f"{_time(record)} {record.levelname} {record.name} {record.getMessage()}{extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def logging_config(log_format: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the whole process. `beacon serve` hands it to granian too, which
    applies it in its own process and in every HTTP worker; granian's access log stays off (Beacon writes
    the request lines) and its own messages go through the same handler."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"beacon": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "beacon", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            "_granian": {"handlers": [], "propagate": True},
            "granian.access": {"handlers": [], "propagate": True},
            "pgserver": {"level": "WARNING"},  # its first-start chatter buries the bootstrap admin key
        },
    }


def configure_logging(setting: str | None) -> None:
    logging.config.dictConfig(logging_config(resolve_log_format(setting)))
