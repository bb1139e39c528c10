"""What a guest gets of WASI (preview 2): wall and monotonic clocks, randomness, and stdout/stderr
captured per call into the plugin's log. Nothing else: no arguments, no environment, no stdin, no
preopened directory (so no file can be opened) and no network (wasmtime's default socket policy
refuses every address, and name lookup is off).

CPython (componentize-py) imports the filesystem and socket interfaces whether or not a guest uses
them, so those are linked too, and answer every use with an error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from wasmtime import WasiConfig

__all__ = [
    "CONTEXT_KEY",
    "WASI_INTERFACES",
    "GuestOutput",
    "stamp_clock",
    "stamps_clock",
    "wasi_config",
    "wasi_import_allowed",
]

log = logging.getLogger("portal.sandbox")

#: The WASI packages a component may import (all provided by wasmtime's WASIp2, configured as above).
#: wasi:http and anything else is refused when the component is loaded.
WASI_INTERFACES = (
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
)
#: The key of page parameters and action data under which pages and actions get the call's clock.
CONTEXT_KEY = "_portal"
#: Calls that receive the clock, and the index of the JSON-object argument it is added to.
_STAMPED = {"render-page": 1, "handle-action": 2}
STDERR_TAIL_LINES = 20
_TRUNCATED = "[output truncated: more than {cap} bytes in one call]"


def wasi_import_allowed(name: str) -> bool:
    return name.startswith(WASI_INTERFACES)


class GuestOutput:
    """stdout and stderr of one instance; `start` opens a call (with its byte cap), `finish` hands over
    the call's lines. Written from the worker thread running the call, one call at a time."""

    def __init__(self) -> None:
        self.cap = 0
        self.size = 0
        self.truncated = False
        self.chunks: list[tuple[str, bytes]] = []

    def start(self, cap: int) -> None:
        self.cap, self.size, self.truncated, self.chunks = cap, 0, False, []

    def _write(self, stream: str, data: bytes) -> None:
        room = self.cap - self.size
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.size += len(data)
            self.chunks.append((stream, data))

    def stdout(self, data: bytes) -> None:  # a wasmtime output callback: None = all bytes taken
        self._write("stdout", data)

    def stderr(self, data: bytes) -> None:
        self._write("stderr", data)

    def finish(self) -> tuple[list[tuple[str, str]], list[str]]:
        """The call's output as (level, line) log entries (stdout: info, stderr: warning), and the last
        stderr lines (what a trap reports: for a Python guest, the traceback's end)."""
        text = {"stdout": b"", "stderr": b""}
        for stream, data in self.chunks:
            text[stream] += data
        entries: list[tuple[str, str]] = []
        tails: list[str] = []
        for stream, level in (("stdout", "info"), ("stderr", "warning")):
            lines = text[stream].decode("utf-8", "replace").splitlines()
            entries += [(level, line) for line in lines if line.strip()]
            if stream == "stderr":
                tails = [line for line in lines if line.strip()][-STDERR_TAIL_LINES:]
        if self.truncated:
            entries.append(("warning", _TRUNCATED.format(cap=self.cap)))
        self.chunks = []
        return entries, tails


def wasi_config(output: GuestOutput) -> WasiConfig:
    """A WASI context with clocks and randomness (wasmtime's defaults: the host's clocks, a secure
    random source) and stdout/stderr into `output`; no argv, env, stdin, preopens or network."""
    config = WasiConfig()
    config.stdout_custom = output.stdout
    config.stderr_custom = output.stderr
    return config


def stamps_clock(name: str) -> bool:
    """Whether calls of guest function `name` get the clock (pages and actions)."""
    return name in _STAMPED


def stamp_clock(
    name: str, args: tuple[Any, ...], time_zone: str | None = None, fixed: dt.datetime | None = None
) -> tuple[Any, ...]:
    """Pages and actions get `now` and `today` (in the tenant's time zone; UTC when it has none)
    under CONTEXT_KEY of their JSON argument; `fixed` replaces the current instant (`portal plugin run
    --now`). Other calls, or an argument that is not a JSON object, pass unchanged."""
    index = _STAMPED.get(name)
    if index is None or len(args) <= index or not isinstance(args[index], str):
        return args
    try:
        payload = json.loads(args[index])
    except ValueError:
        return args
    if not isinstance(payload, dict):
        return args
    zone = _zone(time_zone)
    now = (fixed.astimezone(zone) if fixed is not None else dt.datetime.now(zone)).replace(microsecond=0)
    payload[CONTEXT_KEY] = {
        "now": now.isoformat(),
        "today": now.date().isoformat(),
        "time_zone": time_zone if zone is not dt.UTC else "UTC",
    }
    return (*args[:index], json.dumps(payload), *args[index + 1 :])


def _zone(name: str | None) -> dt.tzinfo:
    if not name:
        return dt.UTC
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except (KeyError, ValueError, OSError, ImportError):  # unknown (ZoneInfoNotFoundError) or malformed
        log.warning("Unknown time zone %r: guests get UTC", name)
        return dt.UTC
