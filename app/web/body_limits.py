"""JSON request bodies are depth-bounded before Litestar decodes them.

The decoder recurses once per nesting level, so a body of 5,000 nested arrays would be a RecursionError
(a 500) in whichever handler it reached: plugin and extension configuration values, records, roles.
Checking the raw body once here covers every JSON endpoint; the size is bounded by Litestar's
request_max_body_size already.
"""

from __future__ import annotations

from litestar import Request
from litestar.exceptions import ValidationException

from app.core.nesting import DEFAULT_MAX_DEPTH, scan_depth

# Forms are flat key/value pairs and never reach a JSON decoder; everything else might (Litestar decodes a
# `data` parameter as JSON whatever the Content-Type says), so it is scanned.
_FLAT = ("multipart/", "application/x-www-form-urlencoded")


async def bound_json_body(request: Request) -> None:
    if request.method in ("GET", "HEAD", "OPTIONS") or request.headers.get(
        "content-type", ""
    ).lower().startswith(_FLAT):
        return None
    body = await request.body()
    problem = scan_depth(body.decode("utf-8", "replace"), "json", DEFAULT_MAX_DEPTH)
    if problem:
        raise ValidationException(detail=f"The JSON body is {problem}")
    return None
