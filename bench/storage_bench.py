"""Stored files: put and get through the database store and the S3 store (moto's S3 server, local),
and how long the event loop went without running while they did (boto3 runs in the store's threads).

    .venv/bin/python bench/storage_bench.py [--files 200] [--size 200000] [--database-url URL]

Without --database-url a SQLite file in a temporary directory is used; a database named `test` (the test
suite's) is refused. Prints,
per store: puts and gets per second, MB/s, median and p99 per operation, and the longest gap of a 5 ms
ticker running beside them (the loop's worst stall: what a blocking call would show as its duration).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}


async def ticker(gaps: list[float], stop: asyncio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last - 0.005)
        last = now


async def run(store_name: str, settings: Any, files: list[bytes]) -> dict[str, float]:
    from app.core.blobs import store_for
    from app.core.db import make_alchemy_config

    store = store_for(settings)
    config = make_alchemy_config(settings, store)
    gaps: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(gaps, stop))
    puts, gets = [], []
    try:
        shas = []
        for content in files:
            started = time.perf_counter()
            async with config.get_session() as s:
                shas.append(await store.put(s, content))
                await s.commit()
            puts.append(time.perf_counter() - started)
        for sha in shas:
            started = time.perf_counter()
            async with config.get_session() as s:
                await store.get(s, sha)
            gets.append(time.perf_counter() - started)
    finally:
        stop.set()
        await tick
        await config.get_engine().dispose()
        store.close()
    size = sum(len(f) for f in files) / 1e6

    def q(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000

    print(
        f"{store_name:9} put {len(puts) / sum(puts):7.1f}/s {size / sum(puts):6.1f} MB/s "
        f"median {statistics.median(puts) * 1000:6.2f} ms p99 {q(puts, 0.99):6.2f} ms | "
        f"get {len(gets) / sum(gets):7.1f}/s {size / sum(gets):6.1f} MB/s "
        f"median {statistics.median(gets) * 1000:6.2f} ms p99 {q(gets, 0.99):6.2f} ms | "
        f"loop's longest stall {max(gaps) * 1000:5.1f} ms"
    )
    return {"stall_ms": max(gaps) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    if args.database_url.rstrip("/").rsplit("/", 1)[-1] == "test":
        parser.error("refusing the database named test (the test suite's); use e.g. .../portal_bench")

    import boto3
    from moto.server import ThreadedMotoServer

    from app.core.db import upgrade
    from app.core.settings import load_settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket="portal-bench")
    print(f"{args.files} files of {args.size} bytes, one transaction per put, a session per get")
    try:
        for name, storage in (
            ("database", {}),
            ("s3 (moto)", {"PORTAL_STORAGE_URL": f"s3://portal-bench/b?endpoint={endpoint}", **CREDENTIALS}),
        ):
            files = [os.urandom(args.size) for _ in range(args.files)]  # new bytes: none stored yet
            with tempfile.TemporaryDirectory() as tmp:
                url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
                env = {"PORTAL_DATA_DIR": tmp, "DATABASE_URL": url, "PORTAL_SECRET_KEY": "bench", **storage}
                settings = load_settings(env)
                upgrade(settings)
                asyncio.run(run(name, settings, files))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
