"""Widget benchmark (issue 4): wrk for 10 s at 64 connections against (1) nginx serving the same document
bytes as a static file, (2) Beacon's widget route, (3) Beacon's 304 path; requests/s and ratios to nginx.
Then freshness: time from a 2xx write (a page rename) to the new document being served, p50/p99 over
200 writes, on the process that took the write and on a second `beacon serve --no-worker` process.

Needs `wrk` and `nginx` on PATH (Debian: `apt-get install -y wrk nginx`) and DATABASE_URL (a scratch
database this script fills). Installs nothing. Loopback only.
Run: `DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_widget .venv/bin/python bench/widget.py`."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.live_server import create_key, free_port, live_server

DURATION, CONNECTIONS, WRITES = "10s", 64, 200


def call(method: str, url: str, token: str | None = None, body: object = None) -> tuple[int, bytes, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}


def wrk(url: str, *headers: str, duration: str = DURATION) -> float:
    args = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}", url]
    for header in headers:
        args += ["-H", header]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"  warning: {non2xx.group(1)} non-2xx/3xx responses from {url}")
    return float(match.group(1))


def nginx(root: Path, body: bytes, name: str = "summary.json") -> tuple[subprocess.Popen[bytes], str]:
    """nginx serving `body` as the static file `name` (bench/public.py serves an HTML index this way too)."""
    root.chmod(0o755)  # nginx workers run as an unprivileged user
    (root / name).write_bytes(body)
    (root / name).chmod(0o644)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1; daemon off; pid {root}/nginx.pid; error_log {root}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {root};
  location / {{ default_type application/json; }} }} }}"""
    )
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(root)])
    for _ in range(100):
        try:
            call("GET", f"http://127.0.0.1:{port}/{name}")
            break
        except OSError:
            time.sleep(0.05)
    return process, f"http://127.0.0.1:{port}/{name}"


def main() -> None:
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y wrk nginx")
    database_url = os.environ["DATABASE_URL"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run([str(Path(sys.executable).parent / "beacon"), "migrate"], env={**os.environ}, check=True)
        admin = create_key(database_url, "bench", "admin")
        with live_server(database_url, root) as server, live_server(database_url, root, worker=False) as replica:
            base = server.url
            _, body, _ = call(
                "POST", f"{base}/v2/status_pages", admin, {"name": "Bench", "slug": f"bench{free_port()}"}
            )
            page = json.loads(body)["status_page"]
            _, body, _ = call("POST", f"{base}/v2/status_page_components", admin, {"name": "API"})
            component = json.loads(body)["status_page_component"]["id"]
            item = {"component": {"component_id": component, "hidden": False, "display_uptime": True}}
            call("PUT", f"{base}/v2/status_page_structures/{page['id']}", admin, {"items": [item]})
            widget = f"{base}/{page['slug']}/api/v1/summary"
            other_widget = f"{replica.url}/{page['slug']}/api/v1/summary"
            _, document, headers = call("GET", widget)
            etag = headers["etag"]

            process, static = nginx(root, document)
            try:
                results = {
                    "nginx static file": wrk(static),
                    "beacon widget 200": wrk(widget),
                    "beacon widget 304": wrk(widget, f"If-None-Match: {etag}"),
                }
            finally:
                process.terminate()
                process.wait()
            for name, rate in results.items():
                print(f"{name:20s} {rate:10.0f} req/s   {rate / results['nginx static file']:.2f}x nginx")

            same: list[float] = []
            other: list[float] = []
            for n in range(WRITES):
                name = f"Bench {n}"  # the page title is in every document
                status, _, _ = call("PUT", f"{base}/v2/status_pages/{page['id']}", admin, {"name": name})
                assert 200 <= status < 300
                written = time.perf_counter()
                needle = json.dumps(name).encode()
                for url, delays in ((widget, same), (other_widget, other)):
                    while needle not in call("GET", url)[1]:
                        pass
                    delays.append((time.perf_counter() - written) * 1000)
            for label, delays in (("same process", same), ("other process", other)):
                delays.sort()
                p99 = delays[int(len(delays) * 0.99) - 1]
                print(
                    f"freshness ({label}) over {WRITES} writes:"
                    f" p50 {statistics.median(delays):.2f} ms, p99 {p99:.2f} ms"
                )


if __name__ == "__main__":
    main()
