"""Translations: every message of app/ and templates/ has a Chinese translation, and the pieces that pick
and apply a request's language (negotiation, Jinja callables and filters, manifest labels) work."""

from __future__ import annotations

import datetime as dt
import re
import types
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from jinja2 import DictLoader, Environment, select_autoescape

from app.core.i18n import LOCALE_DIR, Catalogs, from_accept_language, negotiate, supported
from app.manifest.labels import Label, pick_label
from app.web import i18n

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _extracted() -> dict[str | tuple[str, ...], str]:
    """Every message Babel extracts with the repository's babel.cfg, with where it was found."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        found.setdefault(message, f"{filename}:{lineno}")
    return found


def _catalog(language: str):
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=language)


def test_every_extracted_message_has_a_chinese_translation():
    found = _extracted()
    assert len(found) > 300  # the chrome is wrapped: a broken extraction would find next to nothing
    zh = _catalog("zh")
    untranslated, fuzzy = [], []
    for message, where in found.items():
        key = message[0] if isinstance(message, tuple) else message
        entry = zh.get(key)
        strings = entry.string if entry is not None else None
        if isinstance(strings, tuple):
            strings = strings[0]
        if not strings:
            untranslated.append(f"{where}: {message!r}")
        elif entry is not None and entry.fuzzy:
            fuzzy.append(f"{where}: {message!r}")
    assert not untranslated, "messages without a zh translation:\n" + "\n".join(untranslated)
    assert not fuzzy, "fuzzy zh translations:\n" + "\n".join(fuzzy)


def test_translations_keep_their_placeholders():
    zh = _catalog("zh")
    wrong = []
    for entry in zh:
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for s in strings:
            if set(PLACEHOLDER.findall(s)) != wanted:
                wrong.append((ids[0], s))
    assert not wrong


def test_catalogs_compile_and_translate():
    catalogs = Catalogs.load()
    assert catalogs.get("zh").gettext("Sign in") == "登录"
    assert catalogs.get("en").gettext("Sign in") == "Sign in"
    assert catalogs.get("xx").gettext("Sign in") == "Sign in"  # unknown: the default language
    assert catalogs.get("zh").gettext("not a message of the portal") == "not a message of the portal"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9,zh;q=0.8", "en"),
        ("fr-FR, zh-Hant;q=0.5", "zh"),
        ("fr, de;q=0.5", None),
        ("en;q=0.2, zh_TW;q=0.7", "zh"),
        ("zh;q=0, en", "en"),
        ("", None),
        (None, None),
    ],
)
def test_accept_language(header, expected):
    assert from_accept_language(header) == expected


def test_negotiation_order():
    assert negotiate("zh", "en", "en") == "zh"  # the user's preference first
    assert negotiate(None, "zh", "en-US") == "zh"  # then the switch's cookie
    assert negotiate(None, "bogus", "zh-CN") == "zh"  # then the browser
    assert negotiate(None, None, "fr") == "en"  # else English
    assert supported("ZH_hans") == "zh" and supported("de") is None


def _env() -> Environment:
    env = Environment(
        loader=DictLoader(
            {
                "page.html": '{{ _("Sign in") }}|{{ _("Members of %(name)s", name=who) }}|{{ raw | t }}'
                "|{{ ngettext('…and %(num)s more problem in this block.', "
                "'…and %(num)s more problems in this block.', 3) }}",
                "macro.html": '{% macro m() %}{{ _("Search") }}{% endmacro %}',
                "uses.html": '{% from "macro.html" import m with context %}{{ m() }}',
                "plain.html": '{% from "macro.html" import m %}{{ m() }}',
                "block.html": "{% trans name=who %}Members of {{ name }}{% endtrans %}",
                "filters.html": "{{ when | datetime }}|{{ when | datetime('date') }}|{{ n | number }}|{{ lbl | label }}",
            }
        ),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    i18n.install(env)
    return env


def _ctx(language: str, zone: str = "") -> types.SimpleNamespace:
    return types.SimpleNamespace(
        language=language,
        translations=Catalogs.load().get(language),
        tenant=types.SimpleNamespace(time_zone=zone),
    )


def test_templates_follow_the_language_of_the_rendering_request():
    env = _env()
    zh = env.get_template("page.html").render(ctx=_ctx("zh"), who="<b>Acme</b>", raw="Sign out")
    en = env.get_template("page.html").render(ctx=_ctx("en"), who="Acme", raw="Sign out")
    assert (
        zh == "登录|&lt;b&gt;Acme&lt;/b&gt; 的成员|退出登录|…此块中还有 3 个问题。"
    )  # variables stay escaped
    assert en == "Sign in|Members of Acme|Sign out|…and 3 more problems in this block."
    assert (
        env.get_template("page.html")
        .render(who="x", raw="<i>")
        .endswith("|&lt;i&gt;|…and 3 more problems in this block.")
    )
    # Macros see the request's language when imported with context; without one they show English.
    assert env.get_template("uses.html").render(ctx=_ctx("zh")) == "搜索"
    assert env.get_template("plain.html").render(ctx=_ctx("zh")) == "Search"
    # `{% trans %}` blocks call the same callables (app.web.i18n replaces the extension's wrappers).
    assert (
        env.get_template("block.html").render(ctx=_ctx("zh"), who="<b>Acme</b>")
        == "&lt;b&gt;Acme&lt;/b&gt; 的成员"
    )


def test_locale_formatting_and_tenant_time_zone():
    env = _env()
    when = dt.datetime(2026, 3, 1, 23, 30, 5, tzinfo=dt.UTC)
    values = {"when": when, "n": Decimal("1234567.5"), "lbl": Label({"en": "Items", "zh": "物品"})}
    en = env.get_template("filters.html").render(ctx=_ctx("en"), **values)
    zh = env.get_template("filters.html").render(ctx=_ctx("zh", "Asia/Shanghai"), **values)
    assert en.split("|") == ["Mar 1, 2026, 11:30:05\u202fPM", "Mar 1, 2026", "1,234,567.5", "Items"]
    # Shanghai is UTC+8: the next morning, the next day.
    assert zh.split("|") == ["2026年3月2日 07:30:05", "2026年3月2日", "1,234,567.5", "物品"]
    naive = i18n.format_datetime_for(_ctx("en", "Europe/Berlin"), dt.datetime(2026, 7, 1, 12, 0), "HH:mm")
    assert naive == "14:00"  # naive values are UTC; Berlin is UTC+2 in summer
    assert i18n.format_datetime_for(_ctx("en", "Not/AZone"), when, "HH:mm") == "23:30"  # unknown zone: UTC
    assert i18n.format_number_for(_ctx("en"), "text") == "text"


def test_manifest_labels():
    label = Label({"zh": "物品", "en": "Items"})
    assert label == "Items" and pick_label(label, "zh") == "物品" and pick_label(label, "fr") == "Items"
    only_zh = Label({"zh": "物品"})
    assert only_zh == "物品" and pick_label(only_zh, "en") == "物品"
    assert pick_label("Items", "zh") == "Items"  # a one-language manifest shows labels as given
    assert pick_label({"en": "A", "zh": "甲"}, "zh") == "甲"
    import pickle

    assert pickle.loads(pickle.dumps(label)).by_language == {"zh": "物品", "en": "Items"}


def test_manifest_problems_are_messages_translated_with_their_words():
    from app.manifest import ManifestError, parse_manifest

    try:
        parse_manifest(
            '[plugin]\nid = "x"\nname = "X"\nversion = "1.0.0"\nauthr = 1\n[permissions]\nevents = "y"\n'
        )
    except ManifestError as exc:
        issues = {i.path: i.message for i in exc.issues}
    else:
        raise AssertionError("the manifest should be refused")
    zh = _ctx("zh")
    # English as before (str, the JSON API, the CLI) ...
    assert issues["permissions.events"] == "expected true or false, got a string"
    assert issues["plugin.authr"] == "unknown key 'authr' (did you mean 'author'?)"
    # ... and Chinese where shown, the words filling the message ("a string") translated with it.
    assert i18n.localize(zh, issues["permissions.events"]) == "应为 true 或 false，实际为字符串"
    assert i18n.localize(zh, issues["plugin.authr"]) == "未知键“authr”（您是否想写“author”？）"


def test_messages_survive_exceptions_copies_and_pickles():
    import copy
    import pickle

    from app.core.i18n import N_, Msg, message_of, phrase
    from app.plugins.config_values import parse_text

    message = N_("expected a table, got %(kind)s", kind=phrase(N_("a string")))
    for again in (
        pickle.loads(pickle.dumps(message)),
        copy.deepcopy(message),
        message_of(ValueError(message)),
    ):
        assert isinstance(again, Msg) and again == "expected a table, got a string"
        assert i18n.localize(_ctx("zh"), again) == "应为表，实际为字符串"
    assert message_of(ValueError("plain", 2)) == "('plain', 2)"
    _values, errors = parse_text("oops\nok = 1\nok = 2")
    assert errors["text"] == "line 1: expected key = value; line 3: key 'ok' is already set on line 2"
    assert (
        i18n.localize(_ctx("zh"), errors["text"]) == "第 1 行：应为 键 = 值；第 3 行：键 'ok' 已在第 2 行设置"
    )


def test_the_label_filter_translates_a_standard_fields_message():
    env = Environment(loader=DictLoader({"l.html": "{{ lbl | label }}"}), autoescape=True)
    i18n.install(env)
    from app.manifest.vocabulary import STANDARD_FIELD_LABELS

    created = STANDARD_FIELD_LABELS["created_at"]
    assert env.get_template("l.html").render(ctx=_ctx("zh"), lbl=created) == "创建时间"
    assert env.get_template("l.html").render(ctx=_ctx("en"), lbl=created) == "Created"
