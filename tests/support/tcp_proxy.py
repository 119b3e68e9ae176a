"""A TCP proxy in front of the test Postgres, so a test can take the database away from a live Beacon and
give it back: `cut()` closes the listener and every connection (new connections are refused, as when
Postgres is down), `restore()` listens again on the same port. It forwards to a TCP host:port or, for the
embedded server, to its unix socket. It runs its own event loop in a thread, so the test's blocking calls
(starting a live server, waiting for it) never stall the database traffic of the server under test."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from tests.support.live_server import free_port


class PostgresProxy:
    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        port = parts.port or 5432
        self.unix_path = str(Path(socket_dir) / f".s.PGSQL.{port}") if socket_dir.startswith("/") else None
        self.target = (parts.hostname or "127.0.0.1", port)
        self.port = free_port()
        user = parts.username or "postgres"
        password = f":{parts.password}" if parts.password else ""
        # The same database through the proxy (always TCP: that is what the proxy listens on).
        self.url = urlunsplit((parts.scheme, f"{user}{password}@127.0.0.1:{self.port}", parts.path, "", ""))
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="postgres-proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.restore()

    def restore(self) -> None:
        """Listen again (on the same port)."""
        self._call(self._listen())

    def cut(self) -> None:
        """Stop listening and drop every open connection at once (both directions)."""
        self._call(self._cut())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            if self.unix_path is not None:
                upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.unix_path)
            else:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, upstream_writer}
        for reader, writer in ((client_reader, upstream_writer), (upstream_reader, client_writer)):
            task = asyncio.create_task(self._pipe(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the other side went away; closing below tells its peer
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
