"""A grant made through one worker is honoured by every worker on its next request.

Each uvicorn worker keeps its own PermissionCache; the cache key is the (tenant, system tenant)
policy_version pair read with the tenant row on every request. This test runs the real
`portal serve --workers 2` against PostgreSQL, lets both workers cache bob's "no" for
db.roles.select, grants the permission through the API, and then expects every request from bob
to be allowed within a second, whichever worker answers it. Each request uses a fresh TCP
connection; on Linux the test also checks through /proc that both workers really served bob
before and after the grant.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, reset_pg

REPO = Path(__file__).resolve().parents[2]
PORTAL = Path(sys.executable).parent / "portal"
if not PORTAL.exists():
    PORTAL = REPO / ".venv" / "bin" / "portal"
BOB = ("bob@acme.test", "bob-password-1")
PROPAGATION_S = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(tmp: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "DATABASE_URL"))}
    env.update(
        {
            "PORTAL_DATA_DIR": str(tmp),
            "DATABASE_URL": url,
            "PORTAL_SECRET_KEY": "test-secret-key-0123456789",
            "PORTAL_ADMIN_EMAIL": ADMIN_EMAIL,
            "PORTAL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
    )
    return env


def cli_token(env: dict[str, str], email: str) -> str:
    done = subprocess.run(
        [str(PORTAL), "token", "create", "--user", email, "--name", "multiworker"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"portal token create failed: {done.stderr[-2000:]}"
    return done.stdout.strip().splitlines()[-1]


# --- which worker answered? (Linux /proc; None elsewhere) -------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _server_socket_inode(server_port: int, client_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return inode
    return None


def _owner_of(inode: str, pids: list[int]) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    if os.readlink(fd) == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def request(
        self, method: str, path: str, token: str | None = None, tenant: str | None = None, body: Any = None
    ) -> tuple[int, Any, int | None]:
        """One request on a fresh connection: (status, parsed body, pid of the worker that answered)."""
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if tenant:
            headers["X-Tenant"] = tenant
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            worker = None
            if conn.sock is not None:  # still open (keep-alive): find the worker holding the other end
                inode = _server_socket_inode(self.port, conn.sock.getsockname()[1])
                if inode is not None:
                    worker = _owner_of(inode, _children(self.proc.pid))
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return resp.status, parsed, worker
        finally:
            conn.close()


def start_server(env: dict[str, str], tmp: Path, workers: int = 2) -> Server:
    port = free_port()
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(PORTAL), "serve", "--workers", str(workers), "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, port, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"portal serve exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            status, _, _ = server.request("GET", "/health")
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    stop_server(server)
    pytest.fail(f"portal serve did not answer /health within 90 s:\n{server.log_tail()}")
    raise AssertionError("unreachable")


def stop_server(server: Server) -> None:
    proc = server.proc
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # uvicorn's supervisor stops its workers, then exits
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group started for this server only
        proc.wait(timeout=10)


def test_grant_reaches_every_worker_within_a_second(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Several workers are a PostgreSQL deployment (SQLite serves one worker), so this runs there only."""
    url: str = request.getfixturevalue("pg_migrated")  # skips off-CI without PostgreSQL, fails in CI
    reset_pg()
    env = server_env(tmp_path, url)
    server = start_server(env, tmp_path)
    try:
        admin = cli_token(env, ADMIN_EMAIL)
        status, body, _ = server.request(
            "POST", "/api/v1/tenants", admin, "system", {"slug": "acme", "name": "Acme"}
        )
        assert status == 201, body
        status, body, _ = server.request(
            "POST", "/api/v1/members", admin, "acme", {"email": BOB[0], "password": BOB[1], "role": "Member"}
        )
        assert status == 201, body
        bob = cli_token(env, BOB[0])
        status, body, _ = server.request("GET", "/api/v1/roles", admin, "acme")
        assert status == 200, body
        member_id = next(r["id"] for r in body["items"] if r["name"] == "Member")

        # Both workers answer bob (and cache his permission set) before the grant: all refused.
        workers = set(_children(server.proc.pid))
        seen_before: set[int] = set()
        for i in range(200):
            status, body, pid = server.request("GET", "/api/v1/roles", bob, "acme")
            assert status == 403, (status, body)
            if pid is not None:
                seen_before.add(pid)
            if i >= 19 and (len(seen_before) >= 2 or not workers):
                break
        if workers:
            assert len(seen_before) >= 2, f"only worker(s) {seen_before} of {workers} answered 200 requests"

        status, body, granted_by = server.request(
            "PUT",
            f"/api/v1/roles/{member_id}/permissions",
            admin,
            "acme",
            {"permissions": ["db.roles.select"]},
        )
        assert status == 200 and body["added"] == ["db.roles.select"], body
        granted_at = time.monotonic()

        # Requests inside the propagation window may still be refused; after the first success
        # (or once the window is over) every single request must be allowed, on every worker.
        stale: list[tuple[float, int | None]] = []
        while True:
            status, body, pid = server.request("GET", "/api/v1/roles", bob, "acme")
            elapsed = time.monotonic() - granted_at
            if status == 200:
                break
            assert status == 403, (status, body)
            stale.append((round(elapsed, 3), pid))
            assert elapsed < PROPAGATION_S, (
                f"still refused {elapsed:.2f} s after the grant ({len(stale)} refusals, "
                f"by worker(s) {sorted({str(p) for _, p in stale})})"
            )
        results = []
        seen_after: set[int] = set()
        while len(results) < 20 or (workers and len(seen_after) < 2 and len(results) < 200):
            results.append(server.request("GET", "/api/v1/roles", bob, "acme"))
            if results[-1][2] is not None:
                seen_after.add(results[-1][2])
        statuses = [s for s, _, _ in results]
        assert statuses == [200] * len(results), (
            f"statuses after the grant: {statuses} (stale before: {stale})"
        )
        assert all(any(r["name"] == "Member" for r in b["items"]) for _, b, _ in results)
        if workers:
            assert len(seen_after) >= 2, (
                f"after the grant only worker(s) {seen_after} answered (grant via {granted_by})"
            )
    finally:
        stop_server(server)
    assert server.proc.returncode is not None
