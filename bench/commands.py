"""Commands per second over HTTP: Beacon's command path against the straightforward CRUD API a team would
write on the same stack instead (`bench/crud_baseline.py`), driven by the same client loop, one server after
the other, in one run (issue 14). Goal: Beacon's commands/s >= 1.0x the baseline's, and Beacon's p99 <= the
baseline's p99.

    .venv/bin/python bench/commands.py                      # 30 s per server, about 70 s in all
    .venv/bin/python bench/commands.py --seconds 60 --rounds 3
    .venv/bin/python bench/commands.py --without-waiting    # also Beacon with read-your-writes off

What it measures. 16 concurrent HTTP clients (`--clients`) each run incidents through their life for
`--seconds` per server: declare one on a page with four components, post updates to it (each naming a
component status), resolve it, declare the next; so at most 16 incidents are ongoing at once, as on a real
page. (An earlier version never resolved them, and within ten seconds the page showed over 300 ongoing
incidents, which measured the widget re-rendering an ever larger document rather than the command path.)
A command counts when it answers 201; its latency is from the request's first byte out to the answer's
last byte in. On Beacon every command is the whole production path: auth, rate limit, validation,
load–decide–append and read-your-writes (the answer waits for the read models and the widget documents,
docs/architecture.md#the-path-of-one-command). On the baseline it is the same auth, rate limit and
validation, then one transaction of plain statements on mutable tables.

What the wait costs. `--without-waiting` adds a third server: Beacon with `BEACON_READ_YOUR_WRITES_TIMEOUT=0`,
whose writes answer once recorded instead of once the read models and this process's widget reflect them.
It breaks the contract a client relies on (its next command can be refused: an incident declared right
after its page was created may find no page in the catalog yet), so it is never the goal's row; it shows how much
of the gap to the baseline is the wait, and how much the work of a command itself
(docs/architecture.md#6-read-your-writes).

How. Each server runs alone while it is measured, in its own process tree on loopback with one HTTP
worker: `beacon serve` (granian, plus Beacon's background worker process) and `python -m
bench.crud_baseline` (granian). Each has its own scratch database on the same Postgres server
(DATABASE_URL's, or the embedded one when unset), migrated by Beacon (the baseline uses its API key
table) and dropped at the end. The per-key rate limit is raised for the run (the bench measures
throughput, not the limit). With `--rounds N` the servers alternate (Beacon, CRUD, CRUD, Beacon, …) and
the summary pools every round. Each client drives its own keep-alive connection through
bench/http_client.py, a bare-bytes client: on a 2-core machine the load generator's CPU is CPU the server
under test lacks, and httpx spent ~1.1 ms of it per request.

Where the CPU goes. While the clients run, the bench reads /proc (Linux only): user+system time of the
server's processes (granian's main process, its HTTP worker, Beacon's background worker), the Postgres
backends serving that server's database (each under the process it serves, matched by TCP port),
Postgres's shared background processes, this load generator, and — from /proc/stat — whatever else kept
the machine busy (other users of a shared box show up there, not in the rows above it). Printed per
command and as a share of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable as `python bench/commands.py`

from bench.http_client import Connection
from bench.scratch import with_database
from infra.db import database_url
from infra.migrate import migrate
from infra.settings import Settings
from tests.support.live_server import LiveServer, create_key, free_port, live_server, stop

CLIENTS = 16
UPDATES_PER_INCIDENT = 8
COMPONENTS = 4
GOAL = 1.0
STATUSES = ("investigating", "identified", "monitoring")
COMPONENT_STATUSES = ("degraded_performance", "partial_outage", "full_outage", "operational")
SERVER_ENV = {"BEACON_RATE_LIMIT_PER_MINUTE": "100000000"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent
BEACON, NO_WAIT, CRUD = "Beacon", "Beacon, no wait", "CRUD baseline"
NO_WAIT_ENV = {**SERVER_ENV, "BEACON_READ_YOUR_WRITES_TIMEOUT": "0"}


@dataclass
class Tally:
    """Latencies of successful commands and the failures, by status code."""

    latencies: list[float] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def setup_page(client: Connection) -> tuple[str, list[str]]:
    """A status page whose structure holds `COMPONENTS` components, through the management API."""
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    page = await _ok(client, "POST", "/v2/status_pages", {"name": "Bench", "slug": slug})
    page_id = page["status_page"]["id"]
    components = []
    for n in range(COMPONENTS):
        created = await _ok(client, "POST", "/v2/status_page_components", {"name": f"Service {n}"})
        components.append(created["status_page_component"]["id"])
    items = [{"component": {"component_id": component_id}} for component_id in components]
    await _ok(client, "PUT", f"/v2/status_page_structures/{page_id}", {"items": items})
    return page_id, components


async def _ok(client: Connection, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.request(method, path, body)
    if response.status >= 300:
        raise RuntimeError(f"{method} {path} answered {response.status}: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


async def client_loop(
    client: Connection,
    page_id: str,
    components: list[str],
    deadline: float,
    tally: Tally,
    index: int,
    notify: bool = False,
) -> None:
    """One client: declare an incident, post updates to it, repeat until the deadline; each command with
    `notify_subscribers` set to `notify` (bench/notify.py runs it with subscribers to tell)."""
    n = 0
    incident_id: str | None = None
    while time.perf_counter() < deadline:
        component = components[(index + n) % len(components)]
        status = {"component_id": component, "component_status": COMPONENT_STATUSES[n % len(COMPONENT_STATUSES)]}
        if incident_id is None or n % (UPDATES_PER_INCIDENT + 1) == 0:
            path, body = (
                "/v2/status_page_incidents",
                {
                    "idempotency_key": uuid.uuid4().hex,
                    "status_page_id": page_id,
                    "name": f"Elevated errors #{index}-{n}",
                    "message": "We are investigating elevated error rates.",
                    "incident_status": "investigating",
                    "notify_subscribers": notify,
                    "component_statuses": [status],
                },
            )
        elif n % (UPDATES_PER_INCIDENT + 1) == UPDATES_PER_INCIDENT:
            path, body = (
                "/v2/status_page_incident_updates",
                {
                    "status_page_incident_id": incident_id,
                    "message": "Resolved: error rates are back to normal.",
                    "incident_status": "resolved",
                    "notify_subscribers": notify,
                },
            )
        else:
            path, body = (
                "/v2/status_page_incident_updates",
                {
                    "status_page_incident_id": incident_id,
                    "message": f"Update {n}: still working on it.",
                    "incident_status": STATUSES[n % len(STATUSES)],
                    "notify_subscribers": notify,
                    "component_statuses": [status],
                },
            )
        started = time.perf_counter()
        response = await client.request("POST", path, body)
        elapsed = time.perf_counter() - started
        if response.status == 201:
            tally.latencies.append(elapsed)
            if path == "/v2/status_page_incidents":
                incident_id = response.json()["status_page_incident"]["id"]
        else:
            tally.failures[response.status] = tally.failures.get(response.status, 0) + 1
            incident_id = None  # start afresh with a new incident
        n += 1


# Where the CPU goes, from /proc (Linux only).


def _cpu_ticks(pid: int) -> int:
    """User plus system time of one process, in clock ticks; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of proc(5)


def _machine_ticks() -> tuple[int, int]:
    """All CPUs' busy and total ticks since boot, from the first line of /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(parent, []).append(int(entry))
    return children


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def server_roles(server_pid: int) -> dict[str, list[int]]:
    """The server's process tree by role. Both servers run granian, whose main process supervises HTTP
    workers started with the same command line; `beacon serve` also spawns its background worker (and
    multiprocessing's resource tracker, counted with the main process)."""
    roles: dict[str, list[int]] = {"granian main process": [server_pid], "HTTP worker": [], "background worker": []}
    tree = _children()
    pending = list(tree.get(server_pid, []))
    while pending:
        pid = pending.pop()
        pending += tree.get(pid, [])
        command = _cmdline(pid)
        if "multiprocessing.spawn" in command:
            roles["background worker"].append(pid)
        elif "multiprocessing.resource_tracker" in command:
            roles["granian main process"].append(pid)
        else:
            roles["HTTP worker"].append(pid)
    return roles


def _local_ports(pids: list[int]) -> set[int]:
    """The local TCP ports of the sockets these processes hold: their ends of their connections to Postgres."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)  # the header
            for line in lines:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def postgres_roles(server_url: str, database: str, clients: dict[str, list[int]]) -> dict[str, list[int]]:
    """The Postgres backends serving the bench's database, each under the server process it serves (matched
    by the client's TCP port; backends on a Unix socket stay unattributed), and the server's shared
    background processes (WAL writer, checkpointer, autovacuum …) not busy with another database."""
    admin = await asyncpg.connect(server_url)
    try:
        rows = await admin.fetch(
            "SELECT pid, datname, backend_type, client_port FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    ports = {role: _local_ports(pids) for role, pids in clients.items()}
    roles: dict[str, list[int]] = {f"Postgres for the {role}": [] for role in clients}
    roles["Postgres, other backends"] = []
    roles["Postgres background"] = []
    for row in rows:
        if row["backend_type"] != "client backend":
            if row["datname"] in (None, database):
                roles["Postgres background"].append(row["pid"])
        elif row["datname"] == database:
            served = [role for role, held in ports.items() if row["client_port"] in held]
            roles[f"Postgres for the {served[0]}" if served else "Postgres, other backends"].append(row["pid"])
    return roles


@dataclass
class CpuSample:
    """CPU seconds per role over the measured window, and what the rest of the machine used meanwhile."""

    seconds: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0


class CpuMeter:
    """Reads /proc at the start and the end of the measured window; `roles` names the processes to watch,
    asked again at the end so a Postgres backend opened during the window is counted from zero."""

    def __init__(self, roles: Callable[[], Awaitable[dict[str, list[int]]]]) -> None:
        self.roles = roles
        self.sample = CpuSample()
        self._start: dict[int, int] = {}
        self._machine = (0, 0)
        self._wall = 0.0

    async def start(self) -> None:
        self._start = {pid: _cpu_ticks(pid) for pids in (await self.roles()).values() for pid in pids}
        self._start[os.getpid()] = _cpu_ticks(os.getpid())
        self._machine = _machine_ticks()
        self._wall = time.perf_counter()

    async def stop(self) -> None:
        seconds: dict[str, float] = {}
        roles = {**(await self.roles()), "load generator (this process)": [os.getpid()]}
        for role, pids in roles.items():
            ticks = sum(_cpu_ticks(pid) - self._start.get(pid, 0) for pid in set(pids))
            seconds[role] = ticks / CLOCK_TICKS
        busy = (_machine_ticks()[0] - self._machine[0]) / CLOCK_TICKS
        seconds["everything else on the machine"] = max(0.0, busy - sum(seconds.values()))
        self.sample = CpuSample(seconds=seconds, wall=time.perf_counter() - self._wall)


@dataclass
class Run:
    """One server's measurement (or several pooled): the commands' latencies and the CPU they cost."""

    label: str
    elapsed: float
    tally: Tally
    cpu: CpuSample

    @property
    def rate(self) -> float:
        return len(self.tally.latencies) / self.elapsed

    def pooled(self, other: Run) -> Run:
        failures = dict(self.tally.failures)
        for status, count in other.tally.failures.items():
            failures[status] = failures.get(status, 0) + count
        roles = dict.fromkeys([*self.cpu.seconds, *other.cpu.seconds])
        cpu = CpuSample(
            seconds={role: self.cpu.seconds.get(role, 0.0) + other.cpu.seconds.get(role, 0.0) for role in roles},
            wall=self.cpu.wall + other.cpu.wall,
        )
        tally = Tally(self.tally.latencies + other.tally.latencies, failures)
        return Run(self.label, self.elapsed + other.elapsed, tally, cpu)


async def commands_per_second(
    url: str,
    token: str,
    seconds: float,
    clients: int,
    meter: CpuMeter,
    *,
    notify: bool = False,
    prepare: Callable[[str], Awaitable[None]] | None = None,
) -> Run:
    """`prepare(page_id)` runs once the page exists, before the warm-up (bench/notify.py adds subscribers)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with contextlib.AsyncExitStack() as stack:
        # One connection per client, opened before the clock starts; the first also sets the page up.
        connections = [await stack.enter_async_context(Connection(url, headers, timeout=30)) for _ in range(clients)]
        page_id, components = await setup_page(connections[0])
        if prepare is not None:
            await prepare(page_id)
        # A second of warm-up: connections to Postgres, prepared statements, the key cache.
        warmup = Tally()
        warm_deadline = time.perf_counter() + min(1.0, seconds)
        await asyncio.gather(
            *(
                client_loop(connections[i], page_id, components, warm_deadline, warmup, i, notify)
                for i in range(clients)
            )
        )
        tally = Tally()
        await meter.start()
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(client_loop(connections[i], page_id, components, deadline, tally, i, notify) for i in range(clients))
        )
        elapsed = time.perf_counter() - started
        await meter.stop()
        return Run("", elapsed, tally, meter.sample)


@contextlib.contextmanager
def crud_server(url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """`bench/crud_baseline.py` under granian in its own process (and session, so `stop` ends it whole)."""
    port = free_port()
    log_path = tmp_path / f"crud-{port}.log"
    env = {**os.environ, "DATABASE_URL": url, **SERVER_ENV}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.crud_baseline", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        asyncio.run(_wait_answering(server))
        yield server
    finally:
        stop(server)


async def _wait_answering(server: LiveServer, timeout: float = 60.0) -> None:
    """Ready once a request without a key gets its 401: the app's lifespan (pool, tables) has run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the CRUD baseline exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(OSError):
            async with Connection(server.url, timeout=1) as probe:
                if (await probe.request("POST", "/v2/status_page_components", {"name": "probe"})).status == 401:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the CRUD baseline did not start answering:\n{server.log()}")


@dataclass(frozen=True)
class Target:
    """One side of the comparison: how to start its server, on which database, with which key."""

    label: str
    start: Callable[[str, Path], contextlib.AbstractContextManager[LiveServer]]
    database: str
    url: str
    token: str


def measure(target: Target, tmp_path: Path, seconds: float, clients: int, server_url: str) -> Run:
    with target.start(target.url, tmp_path) as server:

        async def roles() -> dict[str, list[int]]:
            processes = server_roles(server.process.pid)
            return {**processes, **await postgres_roles(server_url, target.database, processes)}

        meter = CpuMeter(roles)
        run = asyncio.run(commands_per_second(server.url, target.token, seconds, clients, meter))
    return Run(target.label, run.elapsed, run.tally, run.cpu)


def beacon_server(url: str, tmp_path: Path) -> contextlib.AbstractContextManager[LiveServer]:
    """`beacon serve` as an operator runs it: granian with one HTTP worker, plus the background worker."""
    return live_server(url, tmp_path, extra_env=SERVER_ENV)


def beacon_without_waiting(url: str, tmp_path: Path) -> contextlib.AbstractContextManager[LiveServer]:
    """The same, with read-your-writes turned off: what the contract's wait costs (it is not the goal's row)."""
    return live_server(url, tmp_path, extra_env=NO_WAIT_ENV)


async def _create_database(server: str, name: str) -> str:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(server, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)  # the baseline needs it too, for the API key table
    finally:
        await conn.close()
    return url


async def _drop_database(server: str, name: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _row(run: Run) -> str:
    tally = run.tally
    p50, p99 = tally.percentile(0.50) * 1000, tally.percentile(0.99) * 1000
    commands = len(tally.latencies)
    return f"{run.label:16}{run.rate:12,.0f}{p50:10.1f}{p99:10.1f}{commands:10}  {tally.failures or 'none'}"


def report(args: argparse.Namespace, rounds: list[list[Run]]) -> None:
    lifecycle = f"declare an incident, {UPDATES_PER_INCIDENT - 1} updates, resolve; repeat"
    print(f"{args.clients} HTTP clients, {args.seconds:g} s per server, one server at a time: {lifecycle}")
    header = f"{'':16}{'commands/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'commands':>10}  failures"
    for number, runs in enumerate(rounds, 1):
        if len(rounds) > 1:
            print(f"round {number}")
        print(header)
        for run in runs:
            print(_row(run))
    labels = list(dict.fromkeys(run.label for runs in rounds for run in runs))
    pooled = [_pooled([run for runs in rounds for run in runs if run.label == label]) for label in labels]
    beacon, crud = (run for label in (BEACON, CRUD) for run in pooled if run.label == label)
    if len(rounds) > 1:
        print(f"all {len(rounds)} rounds pooled")
        print(header)
        for run in pooled:
            print(_row(run))
    ratio = beacon.rate / crud.rate
    beacon_p99, crud_p99 = beacon.tally.percentile(0.99), crud.tally.percentile(0.99)
    print(f"rate: Beacon ÷ CRUD = {ratio:.2f}x (goal >= {GOAL:.1f}x: {'met' if ratio >= GOAL else 'not met'})")
    print(
        f"p99:  Beacon {beacon_p99 * 1000:.1f} ms vs CRUD {crud_p99 * 1000:.1f} ms = {beacon_p99 / crud_p99:.2f}x"
        f" (goal Beacon <= CRUD: {'met' if beacon_p99 <= crud_p99 else 'not met'})"
    )
    for run in pooled:
        if run.label == NO_WAIT:
            print(
                f"without read-your-writes (BEACON_READ_YOUR_WRITES_TIMEOUT=0, not the goal's row): "
                f"{run.rate / crud.rate:.2f}x the rate, p99 {run.tally.percentile(0.99) / crud_p99:.2f}x"
            )
    print("\nCPU while the clients ran, from /proc: ms per command (share of one core)")
    print(f"{'':38}" + "".join(f"{run.label:>22}" for run in pooled))
    roles = list(dict.fromkeys(role for run in pooled for role in run.cpu.seconds))
    totals = {role: [run.cpu.seconds.get(role, 0.0) for run in pooled] for role in roles}
    totals["all of the machine"] = [sum(run.cpu.seconds.values()) for run in pooled]
    for role, used in totals.items():
        cells = [
            f"{seconds / max(1, len(run.tally.latencies)) * 1000:8.2f} ({seconds / run.cpu.wall:6.1%})"
            for seconds, run in zip(used, pooled, strict=True)
        ]
        print(f"{role:38}" + "".join(f"{cell:>22}" for cell in cells))
    loads = ", ".join(f"{load:.2f}" for load in os.getloadavg())
    print(f"(load average at the end: {loads} on {os.cpu_count()} CPUs)")


def _pooled(runs: list[Run]) -> Run:
    pooled = runs[0]
    for run in runs[1:]:
        pooled = pooled.pooled(run)
    return pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per server (default 30)")
    parser.add_argument("--clients", type=int, default=CLIENTS, help=f"concurrent clients (default {CLIENTS})")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure each server this many times, alternating (default 1)"
    )
    parser.add_argument(
        "--without-waiting",
        action="store_true",
        help="also measure Beacon with read-your-writes turned off, to see what the wait costs",
    )
    args = parser.parse_args()
    settings = Settings.from_env()
    server = database_url(settings)
    sides = [(BEACON, "es"), *([(NO_WAIT, "nowait")] if args.without_waiting else []), (CRUD, "crud")]
    names = {label: f"beacon_bench_{side}_{uuid.uuid4().hex[:12]}" for label, side in sides}
    starts = {BEACON: beacon_server, NO_WAIT: beacon_without_waiting, CRUD: crud_server}
    rounds: list[list[Run]] = []
    try:
        targets = []
        for label, name in names.items():
            url = asyncio.run(_create_database(server, name))
            targets.append(Target(label, starts[label], name, url, create_key(url, "bench", "admin")))
        with tempfile.TemporaryDirectory() as tmp:
            for number in range(args.rounds):
                order = targets if number % 2 == 0 else targets[::-1]
                # One server at a time, so the measurements do not compete for the CPU.
                rounds.append([measure(target, Path(tmp), args.seconds, args.clients, server) for target in order])
    finally:
        for name in names.values():
            asyncio.run(_drop_database(server, name))
    report(args, rounds)


if __name__ == "__main__":
    main()
