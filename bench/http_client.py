"""A minimal HTTP/1.1 keep-alive client for benches, so the load generator costs the server under test
as little CPU as possible on a shared machine (httpx spent about 1.1 ms of CPU per request).

One `Connection` is one socket to one server, owned by one simulated client: no pool, no locking.
Requests are written as bytes with a JSON body encoded by msgspec; a response is the status line and
headers up to the blank line, then a body delimited by Content-Length, by chunked transfer coding,
or by the server closing the connection. The connection is reopened before the next request when the
server said `Connection: close` or closed it while idle. A request that fails in flight is never
resent: the server may have acted on it. Bench-only code; not a general-purpose client. (Not named
`http.py`: run as `python bench/x.py`, a bench would then shadow the standard library's `http`.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import msgspec

_ENCODER = msgspec.json.Encoder()
_NO_BODY = frozenset({204, 304})


class ProtocolError(Exception):
    """Raised when a response cannot be read as HTTP/1.1; the connection is closed, not reused."""


@dataclass(frozen=True)
class Response:
    """A whole response: status, headers (names lower-cased) and the body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class Connection:
    """One persistent HTTP/1.1 connection to `url` (http only), sending `headers` with every request."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http://host[:port] URLs are supported, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        self.connections_opened = 0
        fixed = {"Host": parts.netloc, **(headers or {})}
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Self:
        await self._ensure_open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def reusable(self) -> bool:
        """Whether the next request can go out on the current socket without reopening it."""
        return self._reader is not None and not self._reader.at_eof()

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass  # the peer reset it first; closed either way

    async def request(self, method: str, path: str, json: object = None) -> Response:
        body = b"" if json is None else _ENCODER.encode(json)
        head = f"{method} {path} HTTP/1.1\r\n".encode("latin-1") + self._fixed_headers
        if json is not None:
            head += b"Content-Type: application/json\r\n"
        if json is not None or method not in ("GET", "HEAD"):
            head += b"Content-Length: %d\r\n" % len(body)
        reader, writer = await self._ensure_open()
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(head + b"\r\n" + body)
                await writer.drain()
                response, keep_alive = await _read_response(reader, head_only=method == "HEAD")
        except BaseException:
            await self.close()  # its state is unknown: part of a response may still be in flight
            raise
        if not keep_alive:
            await self.close()
        return response

    async def _ensure_open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self.reusable:
            await self.close()
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self.connections_opened += 1
        assert self._reader is not None and self._writer is not None
        return self._reader, self._writer


async def _read_response(reader: asyncio.StreamReader, *, head_only: bool) -> tuple[Response, bool]:
    """One response from `reader`, and whether the connection may carry another request."""
    try:
        raw_head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        raise ProtocolError(f"connection closed before a complete response head: {error.partial[:200]!r}") from None
    status_line, *header_lines = raw_head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line!r}")
    status = int(rest[:3])
    if status < 200:
        raise ProtocolError(f"unexpected interim response {status}: no request asks for one")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise ProtocolError(f"malformed header line: {line!r}")
        headers[name.strip().lower()] = value.strip()
    connection = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)

    transfer_encoding = headers.get("transfer-encoding", "").lower()
    if head_only or status in _NO_BODY:
        body = b""
    elif transfer_encoding == "chunked":
        body = await _read_chunked(reader)
    elif transfer_encoding:
        raise ProtocolError(f"unsupported Transfer-Encoding: {transfer_encoding!r}")
    elif "content-length" in headers:
        try:
            body = await reader.readexactly(int(headers["content-length"]))
        except asyncio.IncompleteReadError as error:
            raise ProtocolError(f"body shorter than Content-Length: {len(error.partial)} bytes") from None
    else:
        body, keep_alive = await reader.read(), False  # delimited by the server closing the connection
    return Response(status, headers, body), keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body (RFC 9112 §7.1): hex-sized chunks, a zero-sized last chunk, trailers skipped."""
    chunks: list[bytes] = []
    try:
        while size := _chunk_size(await reader.readuntil(b"\r\n")):
            chunks.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF")
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # a trailer field; the body ends at the empty line
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed inside a chunked body") from None
    return b"".join(chunks)


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()  # chunk extensions are ignored
    try:
        return int(digits, 16)
    except ValueError:
        raise ProtocolError(f"malformed chunk size line: {line!r}") from None
