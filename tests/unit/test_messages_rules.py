"""Rules of the message module that need no database: the manifest capability, links, the SDK wrapper,
SMTP settings."""

from __future__ import annotations

import pytest

from app import messages
from app.core.errors import ValidationFailed
from app.core.settings import SettingsError, load_settings
from app.manifest import ManifestError, ValidationContext, parse_manifest
from app.plugins.modules import available_modules
from tests.unit.test_guest_sdk import StubHost, pg
from tests.unit.test_manifest import apply, base

WITH_MESSAGE = ValidationContext(available_modules=available_modules())


def test_messages_capability_needs_the_message_module() -> None:
    doc = base()
    apply(doc, "permissions.messages", True)
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc, WITH_MESSAGE)
    assert [(i.path, "message" in i.message) for i in info.value.issues] == [("permissions.messages", True)]
    apply(doc, "dependencies.modules", ["auth", "message"])
    assert parse_manifest(doc, WITH_MESSAGE).capabilities.messages is True
    apply(doc, "permissions.messages", "yes")
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc, WITH_MESSAGE)
    assert info.value.issues[0].path == "permissions.messages"
    # a platform without the module refuses the dependency itself, located
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc, ValidationContext(available_modules=frozenset({"auth"})))
    assert any(i.path.startswith("dependencies.modules") for i in info.value.issues)


@pytest.mark.parametrize("link", ["/t/acme/", "/t/acme/p/x?y=1#z", None, ""])
def test_relative_links_pass(link: str | None) -> None:
    assert messages.check_link(link) == (link or None)


@pytest.mark.parametrize(
    "link",
    [
        "http://x.test/",
        "//x.test",
        "/\\x.test",
        "javascript:alert(1)",
        "x/y",
        "/a\nb",
        "/" + "a" * 600,
        " https://x.test",
    ],
)
def test_other_links_are_refused(link: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        messages.check_link(link)
    assert "link" in info.value.errors


def test_sdk_notify_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.test_guest_sdk import bindings

    host = StubHost()
    monkeypatch.setattr(bindings, "host", host)
    host.replies["notify"] = 2
    assert pg.notify(["u1", "u2"], "Title", "Body", "/t/acme/") == 2
    assert pg.notify("u1", "Only one") == 2
    assert host.calls == [
        ("notify", (["u1", "u2"], "Title", "Body", "/t/acme/")),
        ("notify", (["u1"], "Only one", "", None)),
    ]
    host.refuse["notify"] = "notify: user_ids: not members of this tenant: u9"
    with pytest.raises(pg.HostError, match="not members"):
        pg.notify(["u9"], "x")


def test_smtp_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PORTAL_DATA_DIR": str(tmp_path), "PORTAL_SECRET_KEY": "k" * 20}
    assert load_settings(env).smtp is None
    smtp = load_settings(
        {
            **env,
            "PORTAL_SMTP_HOST": "mail.test",
            "PORTAL_SMTP_PORT": "2525",
            "PORTAL_SMTP_FROM": "portal@corp.test",
            "PORTAL_SMTP_STARTTLS": "true",
            "PORTAL_SMTP_USER": "u",
            "PORTAL_SMTP_PASSWORD": "p",
            "PORTAL_PUBLIC_URL": "https://portal.corp.test/",
        }
    ).smtp
    assert smtp is not None and (smtp.host, smtp.port, smtp.sender, smtp.starttls, smtp.base_url) == (
        "mail.test",
        2525,
        "portal@corp.test",
        True,
        "https://portal.corp.test",
    )
    for bad in ({"PORTAL_SMTP_PORT": "x"}, {"PORTAL_SMTP_USER": "u"}, {"PORTAL_SMTP_STARTTLS": "maybe"}):
        with pytest.raises(SettingsError):
            load_settings({**env, "PORTAL_SMTP_HOST": "mail.test", **bad})


OLD_HOST = """(component
  (import "portal:plugin/host@0.1.0" (instance
    (export "log-write" (func (param "level" string) (param "message" string)))
    (export "check-permission" (func (param "permission" string) (result (result bool (error string)))))))
)"""
NEW_HOST = OLD_HOST.replace(
    '(export "log-write"',
    '''(export "notify" (func (param "user-ids" (list string))
      (param "title" string) (param "body" string) (param "link" (option string)) (result (result u32 (error string)))))
    (export "log-write"''',
)


@pytest.mark.parametrize(("wat", "flag"), [(OLD_HOST, False), (NEW_HOST, True), (NEW_HOST, False)])
def test_components_with_and_without_notify_link(wat: str, flag: bool) -> None:
    """notify joined portal:plugin@0.1.0 without a version bump: a component built before it (importing
    no notify) still links, and one importing it links whether or not the capability is granted."""
    from wasmtime import Store
    from wasmtime.component import Component, Linker

    from app.sandbox import host
    from app.sandbox.engine import make_engine

    engine = make_engine()
    doc = base()
    apply(doc, "dependencies.modules", ["auth", "message"])
    apply(doc, "permissions.messages", flag)
    linker = Linker(engine)
    host.link(linker, parse_manifest(doc, WITH_MESSAGE))
    assert linker.instantiate(Store(engine), Component(engine, wat)) is not None
