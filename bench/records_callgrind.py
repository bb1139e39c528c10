"""Instructions per request, counted by valgrind's callgrind: a deterministic figure where timings are
not (four sessions share two cores). Each scenario runs in-process (the app driven through ASGI, no HTTP
server, no client library) under `valgrind --tool=callgrind --collect-atstart=no`; collection is switched
on only around the measured requests (CALLGRIND_TOGGLE_COLLECT from a tiny C helper compiled here), after
warm-up requests have filled the caches. Database: the records bench's (bench/records_bench.py loads it;
10 tenants x 20,000 rows on PostgreSQL), tenant t03, signed in as the bench admin.

    .venv/bin/python bench/records_callgrind.py                       # this checkout
    .venv/bin/python bench/records_callgrind.py --compare ROOT ...    # other checkouts too (each with
                                                                      # its own ROOT/.venv), one table
    .venv/bin/python bench/records_callgrind.py --scenarios "list page,health" --requests 10

Needs valgrind, gcc and valgrind's headers (/usr/include/valgrind/callgrind.h).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/portal_records_bench"
ADMIN = ("bench@portal.test", "bench-password-1")
PAGE = "/t/t03/p/inventory/inventory/items"
SCENARIOS = ("list page", "search", "fragment", "page 100", "filter", "edit form", "health")
HELPER_C = """
#include <valgrind/callgrind.h>
void portal_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
void portal_zero(void) { CALLGRIND_ZERO_STATS; }
void portal_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""


# -- inside valgrind -------------------------------------------------------------------------------


class Asgi:
    """Requests straight into the ASGI app, with a cookie jar (no HTTP, no client library)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookies: dict[str, str] = {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        hdrs = [(b"host", b"bench.local")]
        if self.cookies:
            hdrs.append((b"cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()).encode()))
        for k, v in (headers or {}).items():
            hdrs.append((k.lower().encode(), v.encode()))
        if body:
            hdrs += [
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(body)).encode()),
            ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": hdrs,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"set-cookie":
                        pair = value.decode().split(";", 1)[0]
                        k, _, v = pair.partition("=")
                        self.cookies[k.strip()] = v.strip().strip('"')
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


async def lifespan(app: Any) -> tuple[asyncio.Queue[Any], asyncio.Task[Any]]:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    outbox: asyncio.Queue[Any] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    message = await outbox.get()
    if message["type"] != "lifespan.startup.complete":
        sys.exit(f"records_callgrind: the app did not start: {message}")
    return inbox, task


def scenario_request(name: str, item: str, category: str) -> tuple[str, str, dict[str, str]]:
    hx = {"HX-Request": "true"}
    return {
        "list page": (PAGE, "", {}),
        "search": (PAGE, urlencode({"q": "zephyr"}), {}),
        "fragment": (PAGE, urlencode({"q": "zephyr"}), hx),
        "page 100": (PAGE, "page=100", {}),
        "filter": (PAGE, urlencode({"category_id": category}), {}),
        "edit form": (f"{PAGE}/{item}/edit", "", {}),
        "health": ("/health", "", {}),
    }[name]


async def inner(args: argparse.Namespace) -> None:
    import ctypes

    toggle = ctypes.CDLL(args.helper).portal_toggle
    sys.path.insert(0, args.root)
    from app.server import create_app  # the checkout's own app

    app = create_app()
    inbox, task = await lifespan(app)
    client = Asgi(app)
    await client.request("GET", "/login")
    form = urlencode(
        {"email": ADMIN[0], "password": ADMIN[1], "next": "/", "_csrf_token": client.cookies["portal_csrf"]}
    )
    status, _ = await client.request("POST", "/login", body=form.encode())
    if status not in (200, 302, 303):
        sys.exit(f"records_callgrind: sign-in answered {status}")
    lib = ctypes.CDLL(args.helper)
    lib.portal_dump.argtypes = [ctypes.c_char_p]
    for name in args.inner.split(","):
        path, query, headers = scenario_request(name, args.item, args.category)
        for _ in range(args.warm):
            status, body = await client.request("GET", path, query=query, headers=headers)
            if status != 200:
                sys.exit(f"records_callgrind: {name} answered {status}: {body[:300]!r}")
        if name == "health":
            await asyncio.sleep(1.1)  # /health asks the database at most once a second: the usual case
        lib.portal_zero()
        toggle()
        for _ in range(args.requests):
            await client.request("GET", path, query=query, headers=headers)
        toggle()
        lib.portal_dump(name.encode())  # a file per scenario: its instructions only
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 30)


# -- outside -----------------------------------------------------------------------------------------


def build_helper(folder: Path) -> Path:
    source, lib = folder / "toggle.c", folder / "libportaltoggle.so"
    source.write_text(HELPER_C)
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    return lib


def ids(url: str) -> tuple[str, str]:
    import psycopg

    with psycopg.connect(re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)) as conn:
        row = conn.execute("SELECT id FROM tenants WHERE slug = 't03'").fetchone()
        if row is None:
            sys.exit("records_callgrind: no bench data; run bench/records_bench.py once")
        t = row[0]
        item = conn.execute(
            "SELECT id FROM plugin_inventory_item WHERE tenant_id = %s LIMIT 1", (t,)
        ).fetchone()[0]
        cat = conn.execute(
            "SELECT id FROM plugin_inventory_category WHERE tenant_id = %s LIMIT 1", (t,)
        ).fetchone()[0]
    return str(item), str(cat)


def measure(
    root: Path, scenarios: list[str], args: argparse.Namespace, helper: Path, item: str, category: str
) -> dict[str, float]:
    """Millions of instructions per request of each scenario in checkout `root` (one process: the app
    starts once under valgrind, which takes minutes; a dump per scenario)."""
    python = root / ".venv/bin/python"
    if not python.exists():
        python = Path(sys.executable)
    data_dir = Path(tempfile.mkdtemp(prefix="portal-cg-"))
    out = data_dir / "callgrind.out"  # callgrind.out.<n> per dump
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "PORTAL_DATA_DIR": str(data_dir),
        "PORTAL_SECRET_KEY": "bench-secret",
        "PORTAL_ADMIN_EMAIL": ADMIN[0],
        "PORTAL_ADMIN_PASSWORD": ADMIN[1],
        "PYTHONHASHSEED": "0",
        # The event dispatcher's sweep would run in the background now and then (counted with the
        # requests under valgrind's slow clock): once an hour instead of every 1.5 s.
        "PORTAL_EVENT_SWEEP_SECONDS": "3600",
        "PORTAL_EVENT_CLAIM_TIMEOUT": "36000",
        "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "portal-cg-pycache" / root.name),
        "PYTHONPATH": str(root),
    }
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        f"--callgrind-out-file={out}",
        str(python),
        str(Path(__file__).resolve()),
        "--inner",
        ",".join(scenarios),
        "--root",
        str(root),
        "--helper",
        str(helper),
        "--item",
        item,
        "--category",
        category,
        "--requests",
        str(args.requests),
        "--warm",
        str(args.warm),
    ]
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"records_callgrind: {root} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    found: dict[str, float] = {}
    for dump in data_dir.glob("callgrind.out*"):
        text = dump.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: Client Request: (.+)$", text, re.M)
        total = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
        if trigger and total and trigger.group(1).strip() in scenarios:
            found[trigger.group(1).strip()] = int(total.group(1)) / args.requests / 1e6
    missing = [s for s in scenarios if s not in found]
    if missing:
        sys.exit(f"records_callgrind: no counts for {missing} in {data_dir}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument(
        "--compare", nargs="+", default=[], metavar="ROOT", help="other checkouts to measure too"
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--requests", type=int, default=20, help="measured requests per scenario")
    parser.add_argument("--warm", type=int, default=5, help="requests before measuring")
    parser.add_argument(
        "--jobs", type=int, default=1, help="checkouts measured at once (counts do not change)"
    )
    parser.add_argument("--skip-this", action="store_true", help="measure only the --compare checkouts")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--helper", help=argparse.SUPPRESS)
    parser.add_argument("--item", help=argparse.SUPPRESS)
    parser.add_argument("--category", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        asyncio.run(inner(args))
        return
    roots = [*([] if args.skip_this else [ROOT]), *(Path(r).resolve() for r in args.compare)]
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        sys.exit(f"records_callgrind: unknown scenarios {sorted(unknown)} (use {', '.join(SCENARIOS)})")
    item, category = ids(args.database_url)
    with tempfile.TemporaryDirectory(prefix="portal-cg-") as folder:
        helper = build_helper(Path(folder))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda r: measure(r, names, args, helper, item, category), roots))
        print(f"  measured in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        table = {name: [counts[name] for counts in results] for name in names}
    labels = [str(r) if r != ROOT else f"{r} (this)" for r in roots]
    print(
        "\nM instructions per request (callgrind), "
        + f"{args.requests} requests after {args.warm} warm-up ones"
    )
    for i, label in enumerate(labels):
        print(f"  [{i}] {label}")
    header = f"{'scenario':<12}" + "".join(f"{f'[{i}]':>10}" for i in range(len(roots)))
    if len(roots) > 1:
        header += f"{'[0]/[1]':>10}"
    print(header)
    for name, values in table.items():
        line = f"{name:<12}" + "".join(f"{v:>10.2f}" for v in values)
        if len(values) > 1:
            line += f"{values[0] / values[1]:>10.2f}"
        print(line)


if __name__ == "__main__":
    main()
