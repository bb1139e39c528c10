"""Domain errors raised by services; the web layer maps them to pages and problem details."""

from __future__ import annotations

from app.core.i18n import N_


class PortalError(Exception):
    status_code = 400
    title = N_("Bad request")

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(PortalError):
    """Bad input; `errors` maps a field name to a message shown next to that field."""

    status_code = 422
    title = N_("Validation failed")

    def __init__(self, errors: dict[str, str], detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class ConflictingValues(ValidationFailed):
    """Values the data's state refuses, not their form: a unique value already taken, a reference to a
    record that does not exist (or is out of reach). 409: the same request can succeed later."""

    status_code = 409
    title = N_("Conflicting values")


class Unauthorized(PortalError):
    """The credentials sent are not (or no longer) valid, e.g. an expired API token."""

    status_code = 401
    title = N_("Sign-in required")


class NotFound(PortalError):
    status_code = 404
    title = N_("Not found")


class Conflict(PortalError):
    status_code = 409
    title = N_("Conflict")


class Forbidden(PortalError):
    status_code = 403
    title = N_("Forbidden")
