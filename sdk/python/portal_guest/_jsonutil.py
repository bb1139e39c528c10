"""JSON in and out of the component.

Guest-side code: runs inside the plugin component (stdlib only, no binding imports).
"""

from __future__ import annotations

import json
from typing import Any


def _default(value: Any) -> Any:
    # Host rows carry dates and decimals as strings already; these cover values authors compute.
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if type(value).__name__ in ("Decimal", "UUID", "Fraction"):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """Compact JSON; dates, decimals, UUIDs and sets are converted, anything else unknown is a TypeError."""
    return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)


def loads_object(text: str, what: str) -> dict[str, Any]:
    """Parse a JSON object sent by the host; an empty string is an empty object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value
