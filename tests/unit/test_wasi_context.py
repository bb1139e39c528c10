"""The host side of what guests get of WASI (app/sandbox/wasi.py): the clock added to pages and
actions, the per-call output buffer, and which imports a component may have."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from app.sandbox.wasi import CONTEXT_KEY, GuestOutput, stamp_clock, wasi_import_allowed


def test_pages_and_actions_get_now_and_today() -> None:
    page = stamp_clock("render-page", ("/x", json.dumps({"q": "1", CONTEXT_KEY: "forged"})))
    params = json.loads(page[1])
    assert params["q"] == "1" and params[CONTEXT_KEY]["time_zone"] == "UTC"
    now = dt.datetime.fromisoformat(params[CONTEXT_KEY]["now"])
    assert now.utcoffset() == dt.timedelta(0) and abs(now - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    assert params[CONTEXT_KEY]["today"] == now.date().isoformat()
    action = stamp_clock("handle-action", ("/x", "save", "{}"))
    assert action[:2] == ("/x", "save") and CONTEXT_KEY in json.loads(action[2])


@pytest.mark.skipif(not Path("/usr/share/zoneinfo/Pacific/Kiritimati").exists(), reason="no tz database")
def test_a_time_zone_shifts_now_and_today() -> None:
    stamped = json.loads(stamp_clock("render-page", ("/x", "{}"), "Pacific/Kiritimati")[1])[CONTEXT_KEY]
    now = dt.datetime.fromisoformat(stamped["now"])
    assert now.utcoffset() == dt.timedelta(hours=14) and stamped["time_zone"] == "Pacific/Kiritimati"
    assert stamped["today"] == now.date().isoformat()
    unknown = json.loads(stamp_clock("render-page", ("/x", "{}"), "Mars/Olympus")[1])[CONTEXT_KEY]
    assert unknown["time_zone"] == "UTC"


def test_other_calls_and_other_arguments_pass_unchanged() -> None:
    assert stamp_clock("handle-event", ("x.y", "{}")) == ("x.y", "{}")
    assert stamp_clock("render-page", ("/x", "[1]")) == ("/x", "[1]")
    assert stamp_clock("render-page", ("/x", "not json")) == ("/x", "not json")


def test_output_is_split_into_lines_and_capped() -> None:
    out = GuestOutput()
    out.start(40)
    out.stdout(b"hello\nwor")
    out.stdout(b"ld\n")
    out.stderr(b"Traceback\nValueError: x\n")
    out.stdout(b"y" * 100)
    entries, tail = out.finish()
    assert entries[:2] == [("info", "hello"), ("info", "world")]
    assert ("warning", "ValueError: x") in entries
    assert entries[-1] == ("warning", "[output truncated: more than 40 bytes in one call]")
    assert tail == ["Traceback", "ValueError: x"]
    assert out.size == 40
    out.start(40)  # the next call starts empty
    assert out.finish() == ([], [])


def test_only_the_provided_wasi_interfaces_are_allowed() -> None:
    assert wasi_import_allowed("wasi:clocks/wall-clock@0.2.9")
    assert wasi_import_allowed("wasi:sockets/tcp@0.2.9")  # linked, and refuses every address
    assert not wasi_import_allowed("wasi:http/outgoing-handler@0.2.9")
    assert not wasi_import_allowed("portal:other/thing@1.0.0")
