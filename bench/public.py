"""Public site benchmark (docs/architecture.md#public-site), in one run:

1. Serving: wrk (`--duration`, 64 connections, `Accept-Encoding: gzip` as browsers send) against nginx
   serving the same (gzipped) bytes as static files, then Beacon's HTML index and `summary.json`, each 200
   and 304 (`If-None-Match`); requests/s and the ratio to nginx (goal >= 0.6x).
2. Freshness on a second process: a page rename answered 2xx by one `beacon serve`, then polling a second
   `beacon serve --no-worker` until its `summary.json` carries the new name; p50/p99 (goal p99 <= 50 ms).
3. Render cost: one rebuild of a realistic mixed log (bench/replay.py's) through `public_widget` and
   `public_site` together; events/s of each one's apply, and the ratio site / widget (goal >= 0.5x).

Needs `wrk` and `nginx` on PATH (Debian: `apt-get install -y wrk nginx`) and DATABASE_URL (a server it
makes scratch databases on). Loopback only.
Run: `DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/public.py`
(`--render-only` for part 3 alone, which needs neither wrk nor nginx)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.history import migrated_database
from bench.replay import copy_mixed_log
from bench.scratch import scratch_database
from bench.widget import call, nginx, wrk
from infra.db import database_url
from infra.settings import Settings
from projections.public_site import PublicSite
from projections.public_widget import PublicWidget
from projections.rebuild import rebuild
from projections.runner import Projection
from tests.support.live_server import BEACON, _env, create_key, free_port, live_server

GZIP = "Accept-Encoding: gzip"


def wait_for(url: str, needle: bytes, timeout: float = 30.0) -> bytes:
    """GET `url` until its body holds `needle` (the public site is rendered in a pass of its own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body, _ = call("GET", url)
            if status == 200 and needle in body:
                return body
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} never showed {needle!r}")


def serving(database_url: str, duration: str, writes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        import subprocess

        subprocess.run([BEACON, "migrate"], env=_env(database_url), check=True)
        admin = create_key(database_url, "bench", "admin")
        with live_server(database_url, root) as server, live_server(database_url, root, worker=False) as replica:
            base = server.url
            slug = f"bench{free_port()}"
            _, body, _ = call("POST", f"{base}/v2/status_pages", admin, {"name": "Bench", "slug": slug})
            page = json.loads(body)["status_page"]
            items = []
            for name in ("API", "Web", "Login", "Billing", "Search"):
                _, body, _ = call("POST", f"{base}/v2/status_page_components", admin, {"name": name})
                component = json.loads(body)["status_page_component"]["id"]
                items.append({"component": {"component_id": component, "hidden": False, "display_uptime": True}})
            call("PUT", f"{base}/v2/status_page_structures/{page['id']}", admin, {"items": items})
            call(
                "POST",
                f"{base}/v2/status_page_incidents",
                admin,
                {
                    "idempotency_key": "bench",
                    "status_page_id": page["id"],
                    "name": "Slow searches",
                    "message": "We are **looking** into it.",
                    "incident_status": "investigating",
                    "component_statuses": [
                        {
                            "component_id": items[4]["component"]["component_id"],
                            "component_status": "degraded_performance",
                        }
                    ],
                    "notify_subscribers": False,
                },
            )
            index = f"{base}/{slug}"
            summary = f"{base}/{slug}/api/v2/summary.json"
            wait_for(summary, b"Slow searches")
            wait_for(index, b"Slow searches")
            results: dict[str, float] = {}
            for label, url, file_name in (("index", index, "index.html"), ("summary.json", summary, "summary.json")):
                # As browsers and HTTP libraries ask: gzip. nginx serves the very bytes Beacon sends.
                request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    document, etag = response.read(), response.headers["ETag"]
                folder = root / file_name.replace(".", "_")
                folder.mkdir()
                root.chmod(0o755)  # nginx workers run as an unprivileged user and must reach the folder
                process, static = nginx(folder, document, file_name)
                try:
                    results[f"nginx {label}"] = wrk(static, GZIP, duration=duration)
                    results[f"beacon {label} 200"] = wrk(url, GZIP, duration=duration)
                    results[f"beacon {label} 304"] = wrk(url, GZIP, f"If-None-Match: {etag}", duration=duration)
                finally:
                    process.terminate()
                    process.wait()
            for name, rate in results.items():
                reference = results["nginx " + name.split()[1]]
                print(f"{name:26s} {rate:10.0f} req/s   {rate / reference:.2f}x nginx")

            delays: list[float] = []
            other = f"{replica.url}/{slug}/api/v2/summary.json"
            for n in range(writes):
                name = f"Bench {n}"
                status, _, _ = call("PUT", f"{base}/v2/status_pages/{page['id']}", admin, {"name": name})
                assert 200 <= status < 300
                written = time.perf_counter()
                needle = json.dumps(name).encode()
                while needle not in call("GET", other)[1]:
                    pass
                delays.append((time.perf_counter() - written) * 1000)
            delays.sort()
            p99 = delays[max(0, int(len(delays) * 0.99) - 1)]
            print(
                f"freshness of summary.json on a second process over {writes} writes:"
                f" p50 {statistics.median(delays):.2f} ms, p99 {p99:.2f} ms (goal <= 50 ms)"
            )


async def render_cost(events: int) -> None:
    settings = Settings.from_env()
    server = await asyncio.to_thread(database_url, settings)
    async with migrated_database(server, settings) as (_, pool):
        written = await copy_mixed_log(pool, events)
        projections: list[Projection] = [PublicWidget(), PublicSite()]
        stats = await rebuild(pool, projections, "beacon_bench_public")
        rates = {}
        for projection in projections:
            seconds = stats.projection_seconds[projection.name]
            rates[projection.name] = stats.events[projection.name] / seconds
            print(
                f"rebuild of {written:,} events: {projection.name:<14} {rates[projection.name]:>10,.0f} events/s"
                f"  ({seconds:.2f}s in its apply)"
            )
        ratio = rates["public_site"] / rates["public_widget"]
        print(f"render cost ratio public_site / public_widget: {ratio:.2f} (goal >= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="5s", help="wrk duration per target")
    parser.add_argument("--writes", type=int, default=100, help="writes timed for freshness")
    parser.add_argument("--events", type=int, default=20_000, help="events in the rebuilt log")
    parser.add_argument("--render-only", action="store_true", help="only the render cost (3.): no wrk, no nginx")
    args = parser.parse_args()
    if args.render_only:
        asyncio.run(render_cost(args.events))
        return
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y wrk nginx")
    settings = Settings.from_env()
    server = database_url(settings)

    async def scratch() -> None:
        async with scratch_database(server) as url:
            await asyncio.to_thread(serving, url, args.duration, args.writes)

    asyncio.run(scratch())
    asyncio.run(render_cost(args.events))


if __name__ == "__main__":
    main()
