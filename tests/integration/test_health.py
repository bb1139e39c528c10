"""`GET /health`: no cookie, no session, the database asked at most once per second per worker, and 503
while the database does not answer (a real engine pointed at a database that is not there)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from app.web.health import STATE_KEY, HealthProbe


def test_health_answers_without_cookie_or_session_and_asks_the_database_once_a_second(client, app):
    engine = app.state.alchemy.get_engine().sync_engine
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    client.cookies.clear()
    event.listen(engine, "before_cursor_execute", note)
    try:
        answers = [client.get("/health") for _ in range(20)]
    finally:
        event.remove(engine, "before_cursor_execute", note)
    for response in answers:
        assert response.status_code == 200 and response.json() == {"status": "ok"}
        assert "set-cookie" not in response.headers  # no CSRF cookie, no session cookie
        assert response.headers["x-content-type-options"] == "nosniff"
    # One SELECT 1 for twenty probes within a second (and no session lookup, no BEGIN).
    assert [s for s in seen if s.strip().upper() != "BEGIN"] == ["SELECT 1"], seen
    probe = app.state[STATE_KEY]
    assert probe.checks == 1

    probe.every = 0.0  # a second has passed: the next probe asks again
    assert client.get("/health").status_code == 200 and probe.checks == 2


def test_health_is_503_while_the_database_does_not_answer(client, app, tmp_path):
    if app.state.settings.is_sqlite:
        url = f"sqlite+aiosqlite:///{tmp_path}/missing/dir/portal.db"  # cannot be opened
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1
    down = create_async_engine(url)
    app.state[STATE_KEY] = HealthProbe(down)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "set-cookie" not in response.headers
    app.state[STATE_KEY] = HealthProbe(app.state.alchemy.get_engine())  # the database is back
    assert client.get("/health").status_code == 200
