"""Several uvicorn workers, each on its own listening socket bound with SO_REUSEPORT.

uvicorn's own `--workers` shares one listening socket among the processes: whichever worker wakes
first accepts, and under keep-alive load connections pile up on one of them (splits of 5/11 between
two workers were measured). With one socket per worker and SO_REUSEPORT the kernel spreads new
connections across the sockets by a hash of the peer address, so each worker gets its share.

The supervisor restarts a worker that dies and stops them all on SIGINT/SIGTERM.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.context import SpawnProcess
from typing import Any

# A worker that dies this soon after its start is failing at start-up: stop instead of looping.
MIN_UPTIME_S = 5.0


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int, *, listen: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    return sock


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    sock = bind(host, port)  # in the child: each worker owns its socket, the kernel balances between them
    config = uvicorn.Config("app.server:app_factory", factory=True, **options)
    uvicorn.Server(config).run(sockets=[sock])


def run(host: str, port: int, workers: int, options: dict[str, Any]) -> None:
    """Run `workers` processes until a signal stops them."""
    # Fail here, once, with the real error when the port is taken. Bound but not listening: the
    # kernel hands connections only to the workers' listening sockets.
    probe = bind(host, port, listen=False)
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> tuple[SpawnProcess, float]:
        proc = ctx.Process(target=_worker, args=(host, port, options), daemon=False)
        proc.start()
        return proc, time.monotonic()

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    procs = [start() for _ in range(workers)]
    probe.close()
    try:
        while not stopping:
            time.sleep(0.2)
            for i, (proc, started) in enumerate(procs):
                if proc.is_alive() or stopping:
                    continue
                if time.monotonic() - started < MIN_UPTIME_S:
                    raise SystemExit(f"worker {proc.pid} exited at start-up (code {proc.exitcode})")
                procs[i] = start()
    finally:
        for proc, _ in procs:
            if proc.is_alive() and proc.pid:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc, _ in procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
