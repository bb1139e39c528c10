"""The parts of named plugin configurations that need no database: value checks, key=value text,
sealed secrets and what config-get answers (app.plugins.configs)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from app.core.models import PluginConfig
from app.manifest import Manifest, parse_manifest
from app.plugins import config_values, configs

TENANT = uuid.UUID(int=7)
OTHER_TENANT = uuid.UUID(int=8)

MANIFEST = """
[plugin]
id = "mailer"
name = "Mailer"
version = "1.0.0"

[[config.fields]]
key = "sender"
type = "email"
required = true

[[config.fields]]
key = "batch"
type = "integer"
default = 50

[[config.fields]]
key = "rate"
type = "decimal"
default = "0.50"

[[config.fields]]
key = "tls"
type = "boolean"
default = true

[[config.fields]]
key = "provider"
type = "select"
options = ["smtp", "api"]

[[config.fields]]
key = "endpoint"
type = "url"

[[config.fields]]
key = "password"
type = "string"
secret = true
required = true
"""


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return parse_manifest(MANIFEST)


def check(
    manifest: Manifest, given: dict[str, Any], stored: tuple[str, ...] = (), **kw: Any
) -> config_values.Incoming:
    return config_values.check_values(
        manifest.config_fields, given, stored, from_form=kw.pop("from_form", False), **kw
    )


def test_values_are_typed_and_blanks_fall_back_to_defaults(manifest: Manifest) -> None:
    out = check(
        manifest,
        {
            "sender": " ops@x.test ",
            "batch": "12",
            "rate": 1.5,
            "tls": "no",
            "provider": "api",
            "endpoint": "",
            "password": "pw",
        },
    )
    assert out.errors == {}
    assert out.plain == {"sender": "ops@x.test", "batch": 12, "rate": "1.5", "tls": False, "provider": "api"}
    assert out.secrets_set == {"password": "pw"}


@pytest.mark.parametrize(
    ("given", "key", "message"),
    [
        ({"batch": "1.5"}, "batch", "'1.5' is not a whole number"),
        ({"batch": True}, "batch", "true is not a whole number"),
        ({"batch": 2**63}, "batch", "does not fit a 64-bit integer"),
        ({"rate": "abc"}, "rate", "'abc' is not a decimal number"),
        ({"rate": "NaN"}, "rate", "is not a decimal number"),
        ({"tls": "maybe"}, "tls", "'maybe' is not true or false"),
        ({"provider": "fax"}, "provider", "'fax' is not one of the options (smtp, api)"),
        ({"endpoint": "javascript:alert(1)"}, "endpoint", "is not an http(s) URL"),
        ({"sender": "nobody"}, "sender", "'nobody' is not an e-mail address"),
        ({"sender": ""}, "sender", "is required"),
        ({"sender": 5}, "sender", "expected text, got an integer"),
        ({"colour": "red"}, "colour", "unknown key 'colour'"),
        ({"password": 5}, "password", "expected text"),
        ({"password": None}, "password", "is required"),
    ],
)
def test_value_errors_are_located(manifest: Manifest, given: dict[str, Any], key: str, message: str) -> None:
    base = {"sender": "a@x.test", "password": "pw"}
    out = check(manifest, {**base, **given})
    assert message in out.errors[f"values.{key}"], out.errors
    assert set(out.errors) == {f"values.{key}"}


def test_secret_rules_of_the_api_and_the_form(manifest: Manifest) -> None:
    stored = ("password",)
    base = {"sender": "a@x.test"}
    # API: left out or *** keeps, null / "" removes (then it is missing), text replaces.
    assert check(manifest, base, stored).secrets_set == {} and not check(manifest, base, stored).errors
    kept = check(manifest, {**base, "password": "***"}, stored)
    assert kept.secrets_set == {} and kept.secrets_cleared == set() and not kept.errors
    removed = check(manifest, {**base, "password": None}, stored)
    assert removed.secrets_cleared == {"password"} and removed.errors == {"values.password": "is required"}
    assert check(manifest, {**base, "password": "new"}, stored).secrets_set == {"password": "new"}
    # Form: blank keeps; the clear box removes.
    blank = check(manifest, {**base, "password": ""}, stored, from_form=True)
    assert blank.secrets_set == {} and not blank.errors
    cleared = check(manifest, {**base, "password": ""}, stored, from_form=True, clear=("password",))
    assert cleared.secrets_cleared == {"password"} and "values.password" in cleared.errors
    # Nothing stored yet: blank means missing.
    assert check(manifest, {**base, "password": ""}, (), from_form=True).errors == {
        "values.password": "is required"
    }


def test_key_value_text() -> None:
    values, errors = config_values.parse_text(
        "# settings\n\nurl = https://x.test/?a=b\nmode=fast  \n empty =\n"
    )
    assert errors == {} and values == {"url": "https://x.test/?a=b", "mode": "fast", "empty": ""}
    assert config_values.parse_text(config_values.format_text(values)) == (values, {})
    _, errors = config_values.parse_text("ok = 1\njust words\n9lives = 1\nok = 2\n")
    assert errors["text"] == (
        "line 2: expected key = value; line 3: '9lives' is not a valid key (letters, digits, "
        "'_', '.', '-', starting with a letter or '_'); line 4: key 'ok' is already set on line 1"
    )
    assert config_values.check_text_values({"a": "1", "b": 2}).errors == {
        "values.b": "expected text (this plugin declares no [[config.fields]]: values are text)"
    }
    assert config_values.check_text_values({"long": "x" * 10_001}).errors == {
        "values.long": "is 10001 characters long (at most 10000)"
    }


def test_names() -> None:
    assert config_values.check_name("Main (EU) v2") is None
    assert config_values.check_name("  ") == "is required"
    assert config_values.check_name("a" * 101) == "at most 100 characters"
    assert config_values.check_name("<script>") is not None


def test_secrets_are_sealed_and_bound_to_their_place() -> None:
    box = config_values.SecretBox("platform-secret-1")
    token = box.seal(TENANT, "mailer", "password", "hunter2")
    assert token.startswith("v1:") and "hunter2" not in token
    assert token != box.seal(TENANT, "mailer", "password", "hunter2")  # a fresh nonce each time
    assert box.open(TENANT, "mailer", "password", token) == "hunter2"
    for tenant, plugin, key in (
        (OTHER_TENANT, "mailer", "password"),
        (TENANT, "other", "password"),
        (TENANT, "mailer", "token"),
    ):
        with pytest.raises(config_values.SecretUnreadable):
            box.open(tenant, plugin, key, token)  # copied into another row: refused
    with pytest.raises(config_values.SecretUnreadable, match="PORTAL_SECRET_KEY"):
        config_values.SecretBox("platform-secret-2").open(TENANT, "mailer", "password", token)
    with pytest.raises(config_values.SecretUnreadable):
        box.open(TENANT, "mailer", "password", token[:-4] + "AAAA")


def test_lookup_answers_json_with_defaults(manifest: Manifest) -> None:
    box = config_values.secret_box("platform-secret-1")
    row = PluginConfig(
        tenant_id=TENANT,
        plugin_id="mailer",
        name="Main",
        is_active=True,
        version=1,
        plain_values={"sender": "a@x.test", "rate": "1.50", "tls": False, "batch": "oops"},
        secret_values={"password": box.seal(TENANT, "mailer", "password", "pw ü")},
    )

    def get(key: str, r: PluginConfig | None = row) -> Any:
        return configs.lookup(manifest, r, box, TENANT, key)

    assert get("sender") == '"a@x.test"'
    assert get("rate") == "1.50" and json.loads(get("rate"), parse_float=Decimal) == Decimal("1.50")
    assert get("tls") == "false"
    assert get("batch") == "50"  # a stored value that no longer fits its type: the default
    assert json.loads(get("password")) == "pw ü"
    assert get("provider") is None and get("undeclared") is None
    assert get("sender", None) is None and get("tls", None) == "true" and get("rate", None) == "0.50"

    free = parse_manifest({"plugin": {"id": "free", "name": "Free", "version": "1.0.0"}})
    text_row = PluginConfig(
        tenant_id=TENANT, plugin_id="free", name="x", plain_values={"mode": "fast"}, secret_values={}
    )
    assert configs.lookup(free, text_row, box, TENANT, "mode") == '"fast"'
    assert configs.lookup(free, text_row, box, TENANT, "other") is None


def test_masked_view_never_holds_a_secret(manifest: Manifest) -> None:
    import datetime as dt

    box = config_values.secret_box("platform-secret-1")
    now = dt.datetime.now(dt.UTC)
    row = PluginConfig(
        id=uuid.uuid4(),
        tenant_id=TENANT,
        plugin_id="mailer",
        name="Main",
        is_active=True,
        version=3,
        plain_values={"batch": 5, "sender": "a@x.test"},
        secret_values={"password": box.seal(TENANT, "mailer", "password", "hunter2")},
        created_at=now,
        updated_at=now,
    )
    view = configs.masked(manifest, row)
    assert view["values"] == {"sender": "a@x.test", "batch": 5, "password": "***"}  # in schema order
    assert "hunter2" not in json.dumps(view) and "v1:" not in json.dumps(view)
