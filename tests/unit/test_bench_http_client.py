"""bench/http_client.py against a scripted server on a real socket: the server records each request it reads
and answers with fixed bytes, so a client that reads too much or too little of a response, or sends a
malformed request, gets the wrong answer back or trips the server's own parsing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import msgspec
import pytest

from bench.http_client import Connection, ProtocolError
from tests.support.polling import wait_until


@dataclass
class Request:
    connection: int
    head: list[str]
    body: bytes

    def header(self, name: str) -> str:
        values = [line.split(":", 1)[1].strip() for line in self.head[1:] if line.lower().startswith(f"{name}:")]
        assert len(values) == 1, f"{name} sent {len(values)} times in {self.head}"
        return values[0]


@dataclass
class Script:
    """What the server answers: `answers[n]` for the n-th request overall; after it, the connection is
    closed when `close_after` holds n."""

    answers: list[bytes]
    close_after: set[int] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    connections: int = 0


def json_response(status: int, body: object, *extra: str) -> bytes:
    """A response as granian writes one: lower-case headers, Content-Length."""
    payload = msgspec.json.encode(body)
    headers = ["content-type: application/json", f"content-length: {len(payload)}", *extra]
    return f"HTTP/1.1 {status} X\r\n".encode() + "".join(f"{h}\r\n" for h in headers).encode() + b"\r\n" + payload


@asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script.connections += 1
        connection = script.connections
        try:
            while not reader.at_eof():
                try:
                    head = (await reader.readuntil(b"\r\n\r\n")).decode()[:-4].split("\r\n")
                except asyncio.IncompleteReadError:
                    return  # the client closed the connection
                length = [int(line.split(":")[1]) for line in head if line.lower().startswith("content-length:")]
                request = Request(connection, head, await reader.readexactly(length[0]) if length else b"")
                n = len(script.requests)
                script.requests.append(request)
                writer.write(script.answers[n])
                await writer.drain()
                if n in script.close_after:
                    return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_request_goes_out_as_http_and_a_content_length_answer_comes_back_whole() -> None:
    script = Script([json_response(201, {"status_page": {"id": "p1", "name": "Bench"}})])
    async with scripted_server(script) as url, Connection(url, {"Authorization": "Bearer k"}, timeout=2) as client:
        response = await client.request("POST", "/v2/status_pages", {"name": "Bench", "slug": "bench-1"})

    assert response.status == 201
    assert response.json() == {"status_page": {"id": "p1", "name": "Bench"}}
    assert response.headers["content-type"] == "application/json"
    [sent] = script.requests
    assert sent.head[0] == "POST /v2/status_pages HTTP/1.1"
    assert sent.header("host") == url.removeprefix("http://")
    assert sent.header("authorization") == "Bearer k"
    assert sent.header("content-type") == "application/json"
    assert msgspec.json.decode(sent.body) == {"name": "Bench", "slug": "bench-1"}


async def test_two_requests_share_one_keep_alive_connection_and_each_gets_its_own_answer() -> None:
    script = Script([json_response(201, {"n": 1}), json_response(422, {"errors": ["no"]})])
    async with scripted_server(script) as url, Connection(url, timeout=2) as client:
        first = await client.request("POST", "/a", {"x": 1})
        second = await client.request("PUT", "/b", {"x": 2})

    assert (first.status, first.json()) == (201, {"n": 1})
    assert (second.status, second.json()) == (422, {"errors": ["no"]})
    assert [(r.connection, r.head[0]) for r in script.requests] == [(1, "POST /a HTTP/1.1"), (1, "PUT /b HTTP/1.1")]
    assert client.connections_opened == 1


@pytest.mark.parametrize(
    ("close_header", "server_closes"),
    [(("connection: close",), False), ((), True)],
    ids=["connection-close-header", "silent-eof"],
)
async def test_a_connection_the_server_ended_is_reopened_for_the_next_request(
    close_header: tuple[str, ...], server_closes: bool
) -> None:
    # With the header the server keeps its end open, so only honouring the header gives connection 2.
    script = Script(
        [json_response(201, {"n": 1}, *close_header), json_response(201, {"n": 2})],
        close_after={0} if server_closes else set(),
    )
    async with scripted_server(script) as url, Connection(url, timeout=2) as client:
        first = await client.request("POST", "/a", {})
        # The header, or the server's FIN reaching the client.
        await wait_until(lambda: not client.reusable, interval=0.001)
        second = await client.request("POST", "/a", {})

    assert [first.json(), second.json()] == [{"n": 1}, {"n": 2}]
    assert [r.connection for r in script.requests] == [1, 2]
    assert client.connections_opened == 2


async def test_a_chunked_answer_is_reassembled_and_the_connection_stays_usable() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"7;ext=1\r\n" + b'{"a": [' + b"\r\n"
        b"b\r\n" + b"1, 2, 3]}  " + b"\r\n"
        b"0\r\nx-trailer: yes\r\n\r\n"
    )
    script = Script([chunked, json_response(200, {"after": True})])
    async with scripted_server(script) as url, Connection(url, timeout=2) as client:
        first = await client.request("GET", "/chunked")
        second = await client.request("GET", "/next")

    assert first.json() == {"a": [1, 2, 3]}
    assert second.json() == {"after": True}
    assert client.connections_opened == 1


async def test_a_truncated_answer_raises_instead_of_passing_for_a_response() -> None:
    script = Script([b'HTTP/1.1 201 Created\r\ncontent-length: 50\r\n\r\n{"short": 1}'], close_after={0})
    async with scripted_server(script) as url, Connection(url, timeout=2) as client:
        with pytest.raises(ProtocolError, match="shorter than Content-Length"):
            await client.request("POST", "/a", {})
        assert not client.reusable
