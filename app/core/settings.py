"""Settings read from the environment once, at start-up."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from app.core.limits import PLATFORM_DEFAULT, PLATFORM_MAXIMUM, Limits, from_env

SYSTEM_TENANT_ID = "00000000-0000-0000-0000-000000000001"
SYSTEM_TENANT_SLUG = "system"


class SettingsError(Exception):
    """A setting is unusable; the message is one line meant for the operator."""


@dataclass(frozen=True)
class SmtpSettings:
    """Outgoing mail for notifications (optional: without PORTAL_SMTP_HOST nothing is emailed)."""

    host: str
    port: int = 25
    sender: str = "portal@localhost"
    user: str = ""
    password: str = ""
    starttls: bool = False
    timeout_seconds: float = 10.0
    base_url: str = ""  # PORTAL_PUBLIC_URL, prefixed to the relative links in emails


@dataclass(frozen=True)
class StorageSettings:
    """Where stored files live (PORTAL_STORAGE_URL, app.core.blobs): the database (empty or
    ``database``) or an S3-compatible bucket, ``s3://bucket/prefix?endpoint=URL&region=R&addressing=path``.
    Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), else from
    boto3's usual chain (~/.aws, instance role)."""

    kind: str = "database"  # database | s3
    bucket: str = ""
    prefix: str = ""  # "" or ending in "/": objects are <prefix><sha256>
    endpoint: str = ""  # "" = AWS itself
    region: str = ""
    addressing: str = ""  # path | virtual | "" (path when an endpoint is given, else boto3's choice)
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)

    @property
    def name(self) -> str:
        """How errors, logs and /health name the store (no credentials)."""
        return "the database" if self.kind == "database" else f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str
    admin_email: str | None = None
    admin_password: str | None = None
    session_idle_seconds: int = 2 * 3600
    session_absolute_seconds: int = 12 * 3600
    login_max_failures: int = 5
    login_window_seconds: int = 15 * 60
    secure_cookies: bool = False
    # PORTAL_PUBLIC_URL: where users reach the portal; https:// there makes every cookie Secure too.
    public_url: str = ""
    debug: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    wasm_default: Limits = PLATFORM_DEFAULT
    wasm_maximum: Limits = PLATFORM_MAXIMUM
    wasm_pool_size: int = 4  # warm instances per (plugin, tenant) and worker
    wasm_cache_dir: Path | None = None  # compiled components; default <data_dir>/wasm-cache
    # Per-call peak memory of guests (own memory creator, no copy-on-write images: more RSS per instance).
    wasm_memory_stats: bool = False
    # PORTAL_WASM_COMPILER: cranelift (optimising, slow to compile) or winch (baseline: compiles ~5x faster).
    wasm_compiler: str = "cranelift"
    event_sweep_seconds: float = 1.5  # how often each worker looks for events left by other processes
    event_claim_timeout_seconds: int = 300  # a claim this old (its worker died) is taken over
    smtp: SmtpSettings | None = None  # PORTAL_SMTP_*; None = notifications are in-app only
    storage: StorageSettings = StorageSettings()  # PORTAL_STORAGE_URL; default: in the database

    @property
    def compile_cache(self) -> Path:
        return self.wasm_cache_dir or self.data_dir / "wasm-cache"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def normalize_database_url(url: str) -> str:
    """Map the URLs people type to the async drivers the portal uses."""
    url = url.strip()
    if not url:
        raise SettingsError("DATABASE_URL is empty")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise SettingsError(f"DATABASE_URL {url!r} is not a URL (expected e.g. postgresql://user@host/db)")
    base = scheme.split("+", 1)[0].lower()
    if base in {"postgres", "postgresql"}:
        return f"postgresql+psycopg://{rest}"
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    raise SettingsError(
        f"DATABASE_URL scheme {scheme!r} is not supported (use postgresql://... or sqlite:///path)"
    )


def _secret_key(data_dir: Path) -> str:
    given = os.environ.get("PORTAL_SECRET_KEY")
    if given:
        return given
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_settings(env: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ if env is None else env)
    data_dir = Path(environ.get("PORTAL_DATA_DIR", "./var")).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"PORTAL_DATA_DIR {str(data_dir)!r} cannot be created: {exc.strerror}") from exc
    raw_url = environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'portal.db'}"
    return Settings(
        data_dir=data_dir,
        database_url=normalize_database_url(raw_url),
        secret_key=environ.get("PORTAL_SECRET_KEY") or _secret_key(data_dir),
        admin_email=environ.get("PORTAL_ADMIN_EMAIL") or None,
        admin_password=environ.get("PORTAL_ADMIN_PASSWORD") or None,
        secure_cookies=environ.get("PORTAL_SECURE_COOKIES", "").lower() in {"1", "true", "yes"},
        public_url=environ.get("PORTAL_PUBLIC_URL", "").strip().rstrip("/"),
        debug=environ.get("PORTAL_DEBUG", "").lower() in {"1", "true", "yes"},
        wasm_default=_limits(environ, "PORTAL_WASM_", PLATFORM_DEFAULT),
        wasm_maximum=_limits(environ, "PORTAL_WASM_MAX_", PLATFORM_MAXIMUM),
        wasm_pool_size=_int(environ, "PORTAL_WASM_POOL_SIZE", 4),
        wasm_cache_dir=Path(environ["PORTAL_WASM_CACHE_DIR"]).resolve()
        if environ.get("PORTAL_WASM_CACHE_DIR")
        else None,
        wasm_memory_stats=environ.get("PORTAL_WASM_MEMORY_STATS", "").lower() in {"1", "true", "yes"},
        wasm_compiler=_compiler(environ),
        event_sweep_seconds=_positive_float(environ, "PORTAL_EVENT_SWEEP_SECONDS", 1.5),
        event_claim_timeout_seconds=_int(environ, "PORTAL_EVENT_CLAIM_TIMEOUT", 300),
        smtp=_smtp(environ),
        storage=storage_settings(environ),
    )


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_STORAGE_OPTIONS = {"endpoint", "region", "addressing"}


def storage_settings(environ: dict[str, str]) -> StorageSettings:
    """PORTAL_STORAGE_URL read and checked (a bad one stops the start with one line naming it)."""
    raw = environ.get("PORTAL_STORAGE_URL", "").strip()
    if raw in {"", "database", "db"}:
        return StorageSettings()
    url = urlsplit(raw)
    if url.scheme != "s3":
        raise SettingsError(
            f"PORTAL_STORAGE_URL {raw!r}: use database, or s3://bucket/prefix?endpoint=...&region=..."
        )
    if not _BUCKET.fullmatch(url.netloc):
        raise SettingsError(f"PORTAL_STORAGE_URL {raw!r}: {url.netloc!r} is not an S3 bucket name")
    query = parse_qs(url.query, keep_blank_values=True)
    unknown = sorted(set(query) - _STORAGE_OPTIONS)
    if unknown:
        raise SettingsError(
            f"PORTAL_STORAGE_URL {raw!r}: unknown option {unknown[0]!r} (known: endpoint, region, addressing)"
        )
    option = {k: v[-1].strip() for k, v in query.items()}
    endpoint = option.get("endpoint", "")
    if endpoint and urlsplit(endpoint).scheme not in {"http", "https"}:
        raise SettingsError(f"PORTAL_STORAGE_URL {raw!r}: endpoint must be an http:// or https:// URL")
    addressing = option.get("addressing", "")
    if addressing not in {"", "path", "virtual"}:
        raise SettingsError(f"PORTAL_STORAGE_URL {raw!r}: addressing must be path or virtual")
    prefix = url.path.strip("/")
    access_key = environ.get("AWS_ACCESS_KEY_ID", "")
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY", "")
    if bool(access_key) != bool(secret_key):
        raise SettingsError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
    return StorageSettings(
        kind="s3",
        bucket=url.netloc,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=endpoint,
        region=option.get("region", "")
        or environ.get("AWS_DEFAULT_REGION", "")
        or environ.get("AWS_REGION", ""),
        addressing=addressing or ("path" if endpoint else ""),
        access_key=access_key,
        secret_key=secret_key,
        session_token=environ.get("AWS_SESSION_TOKEN", ""),
    )


def _compiler(environ: dict[str, str]) -> str:
    value = environ.get("PORTAL_WASM_COMPILER", "").strip().lower() or "cranelift"
    if value not in {"cranelift", "winch"}:
        raise ValueError(f"PORTAL_WASM_COMPILER must be cranelift or winch, not {value!r}")
    return value


def _smtp(environ: dict[str, str]) -> SmtpSettings | None:
    host = environ.get("PORTAL_SMTP_HOST", "").strip()
    if not host:
        return None
    user = environ.get("PORTAL_SMTP_USER", "")
    password = environ.get("PORTAL_SMTP_PASSWORD", "")
    if bool(user) != bool(password):
        raise SettingsError("PORTAL_SMTP_USER and PORTAL_SMTP_PASSWORD must be set together")
    starttls = environ.get("PORTAL_SMTP_STARTTLS", "").lower()
    if starttls not in {"", "0", "1", "true", "false", "yes", "no"}:
        raise SettingsError(f"PORTAL_SMTP_STARTTLS must be true or false, got {starttls!r}")
    return SmtpSettings(
        host=host,
        port=_int(environ, "PORTAL_SMTP_PORT", 25),
        sender=environ.get("PORTAL_SMTP_FROM", "").strip() or "portal@localhost",
        user=user,
        password=password,
        starttls=starttls in {"1", "true", "yes"},
        base_url=environ.get("PORTAL_PUBLIC_URL", "").strip().rstrip("/"),
    )


def _int(environ: dict[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from exc


def _positive_float(environ: dict[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from exc
    if not value > 0:
        raise SettingsError(f"{name} must be more than 0, got {raw!r}")
    return value


def _limits(environ: dict[str, str], prefix: str, base: Limits) -> Limits:
    try:
        return from_env(environ, prefix, base)
    except ValueError as exc:
        raise SettingsError(f"{prefix}* settings must be whole numbers: {exc}") from exc
