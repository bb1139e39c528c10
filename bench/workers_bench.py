"""One worker against two (issue 17): throughput ratio, p99 against the median, and each worker's share.

Uses records_bench's data (10 tenants x 20,000 inventory_item rows in PostgreSQL, loaded once) and drives
the list page and the create POST with wrk (2 threads, 16 connections, loopback), alternating
`portal serve --workers 1` and `--workers 2` for `--rounds` rounds; prints each run and the medians:
two-worker requests/s over one-worker (target >= 1.8), p99 / p50 with two workers (target <= 2), and the
workers' split of the app CPU (SO_REUSEPORT: one listening socket per worker, app/cli/workers.py).

    .venv/bin/python bench/workers_bench.py [--duration 10] [--rounds 3]

On a 2-core machine wrk and PostgreSQL share the cores with the workers: the ratio printed is what this
machine allows, not what two dedicated cores would give.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records_bench import POST_SCRIPT, ROOT, balance, cpu_seconds, free_port, prepare, sign_in, tree, wrk


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat: how many cores a run kept busy."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def start(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/portal"), "serve", "--workers", str(workers), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    return server, base


def run(env: dict[str, str], workers: int, seconds: int, data_dir: Path) -> dict[str, dict[str, object]]:
    server, base = start(env, workers)
    try:
        _client, cookie, csrf = sign_in(base)
        page = f"{base}/t/t03/p/inventory/inventory/items"
        script = data_dir / "post.lua"
        script.write_text(f'cookie = "{cookie}"\ncsrf = "{csrf}"\n' + POST_SCRIPT)
        pids = [p for p in tree(server.pid) if p != server.pid] or [server.pid]
        out: dict[str, dict[str, object]] = {}
        for name, target, lua in (("list page 1", page, None), ("create POST", f"{page}/new", script)):
            wrk(target, {"Cookie": cookie, "x-csrftoken": csrf}, 2, lua)  # warm both workers
            before = {pid: cpu_seconds([pid], reaped=False) for pid in pids}
            busy0, total0 = busy_jiffies()
            result = wrk(target, {"Cookie": cookie, "x-csrftoken": csrf}, seconds, lua)
            busy1, total1 = busy_jiffies()
            split = balance(before, {pid: cpu_seconds([pid], reaped=False) for pid in pids})
            cores = (os.cpu_count() or 1) * (busy1 - busy0) / max(1, total1 - total0)
            out[name] = {**result, "split": split, "cores": cores}
        return out
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/portal_records_bench")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("workers_bench: wrk is missing (apt-get install -y wrk)")
    data_dir = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    try:
        env = prepare(args.database_url, args.rebuild, data_dir)
        runs: dict[int, list[dict[str, dict[str, object]]]] = {1: [], 2: []}
        print(
            f"{'run':<10} {'scenario':<12} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99/p50':>7} {'split':>7} {'busy cores':>10}"
        )
        for round_no in range(1, args.rounds + 1):
            for workers in (1, 2):
                got = run(env, workers, args.duration, data_dir)
                runs[workers].append(got)
                for name, r in got.items():
                    p50, p99 = float(r["p50"]), float(r["p99"])  # type: ignore[arg-type]
                    print(
                        f"{round_no}:{workers} wkr   {name:<12} {float(r['rps']):>7.0f} {p50:>7.1f} {p99:>7.1f} "  # type: ignore[arg-type]
                        f"{p99 / p50:>7.2f} {r['split']!s:>7} {float(r['cores']):>10.2f}"  # type: ignore[arg-type]
                    )
        print()
        for name in ("list page 1", "create POST"):
            one = statistics.median(float(r[name]["rps"]) for r in runs[1])  # type: ignore[arg-type]
            two = statistics.median(float(r[name]["rps"]) for r in runs[2])  # type: ignore[arg-type]
            tail = statistics.median(float(r[name]["p99"]) / float(r[name]["p50"]) for r in runs[2])  # type: ignore[arg-type]
            print(
                f"{name}: 2 workers / 1 worker = {two / one:.2f}x (target >= 1.8) "
                f"{'PASS' if two / one >= 1.8 else 'FAIL'}; p99/p50 with 2 workers = {tail:.2f} (target <= 2) "
                f"{'PASS' if tail <= 2 else 'FAIL'}"
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
