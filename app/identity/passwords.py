"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.i18n import N_

_hasher = PasswordHasher()
# A hash of a random password, verified against when the email is unknown so timing does not
# reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("dummy-password-for-timing")

COMMON = {
    "password",
    "password1",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "letmein123",
    "admin12345",
    "iloveyou12",
    "welcome123",
    "passw0rd12",
}
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str, email: str = "") -> str | None:
    """Why this password is too weak, or None when acceptable."""
    if len(password) < MIN_LENGTH:
        return N_("Use at least %(min_length)s characters.", min_length=MIN_LENGTH)
    if len(password) > 256:
        return N_("Use at most 256 characters.")
    if password.lower() in COMMON or len(set(password)) < 4:
        return N_("This password is too common or repetitive.")
    if email and password.lower() == email.lower():
        return N_("The password must differ from the email address.")
    if password.isalpha() or password.isdigit():
        return N_("Mix letters with digits or symbols.")
    return None
