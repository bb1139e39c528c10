"""Languages: the gettext catalogs in `app/locale`, compiled in memory, and choosing a request's locale.

The catalogs are the `.po` files in the repository (`app/locale/<lang>/LC_MESSAGES/messages.po`); they are
compiled to in-memory `.mo` data the first time an app asks for them, once per process and file version,
so a plain `pip install -e .` needs no build step. Python code marks a message for extraction with `N_`
(it translates nothing: the text is translated where it is shown, in the reader's locale).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.messages import mofile, pofile
from babel.support import NullTranslations, Translations

from app.core.db import SERVICES_KEY

LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "portal_lang"
# Each language in its own tongue: the switch shows these untranslated.
LANGUAGE_NAMES = {"en": "English", "zh": "中文"}
BABEL_LOCALES = {"en": "en", "zh": "zh_Hans_CN"}


class Msg(str):
    """A message translated where it is shown: the English text, keeping its msgid and parameters so a
    page can show it in the reader's language (app.web.i18n's `t` filter, flash messages)."""

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, params: dict[str, Any]) -> Msg:
        message = super().__new__(cls, _format(msgid, params))
        message.msgid, message.params = msgid, params
        return message

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles keep the msgid (str's would lose it)
        return (Msg, (self.msgid, self.params))

    def translated(self, translations: NullTranslations) -> str:
        params = {k: v.translated(translations) if isinstance(v, Msg) else v for k, v in self.params.items()}
        return _format(translations.gettext(self.msgid), params)


def _format(text: str, params: dict[str, Any]) -> str:
    if not params:
        return text
    try:
        return text % params
    except (KeyError, TypeError, ValueError):  # a broken translation (or a forged flash) shows unfilled
        return text


def N_(message: str, **params: Any) -> str:
    """Mark `message` for extraction; it is translated when shown. With `%(name)s` parameters the result
    is a :class:`Msg` (its text is the English one filled in)."""
    return Msg(message, params) if params else message


def phrase(message: str) -> Msg:
    """`message` (marked with `N_`) as a :class:`Msg`: a word or phrase that fills another message's
    parameter (`N_("expected %(what)s", what=phrase(N_("a table")))`) is translated with it."""
    return Msg(message, {})


def message_of(exc: BaseException) -> str:
    """The message an exception was raised with, still a :class:`Msg` when it was one (`str(exc)`
    would give its English text)."""
    first = exc.args[0] if len(exc.args) == 1 else None
    return first if isinstance(first, str) else str(exc)


@functools.lru_cache(maxsize=8)
def _compiled(path: Path, mtime_ns: int) -> Translations:
    with path.open("rb") as f:
        catalog = pofile.read_po(f, locale=path.parts[-3])
    data = io.BytesIO()
    mofile.write_mo(data, catalog, use_fuzzy=False)  # fuzzy entries are not translations yet
    data.seek(0)
    return Translations(fp=data, domain="messages")


def load_translations(language: str, locale_dir: Path = LOCALE_DIR) -> NullTranslations:
    """The compiled catalog of `language` (identity when it has none)."""
    path = locale_dir / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return NullTranslations()
    return _compiled(path, path.stat().st_mtime_ns)


@dataclass(frozen=True)
class Catalogs:
    """One app's translations per language, built by the composition root."""

    by_language: dict[str, NullTranslations]

    @classmethod
    def load(cls, locale_dir: Path = LOCALE_DIR) -> Catalogs:
        return cls({lang: load_translations(lang, locale_dir) for lang in LANGUAGES})

    def get(self, language: str) -> NullTranslations:
        return self.by_language.get(language) or self.by_language[DEFAULT_LANGUAGE]


def translations_for(session: Any, language: str | None) -> NullTranslations:
    """The catalog of `language` from the services of the app that opened `session` (identity outside
    an app): for texts stored in a recipient's language, such as notifications."""
    catalogs = getattr(session.info.get(SERVICES_KEY), "catalogs", None)
    return (
        catalogs.get(supported(language) or DEFAULT_LANGUAGE) if catalogs is not None else NullTranslations()
    )


def supported(language: str | None) -> str | None:
    """`language` as one of LANGUAGES (`zh-CN`, `zh_Hans` → `zh`), or None."""
    if not language:
        return None
    primary = language.strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an `Accept-Language` header, by quality then order."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "").split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        language = supported(tag)
        if language and quality > 0:
            ranked.append((-quality, index, language))
    return min(ranked)[2] if ranked else None


def negotiate(preference: str | None, cookie: str | None, accept_language: str | None) -> str:
    """A request's language: the user's preference, else the switch's cookie, else the browser's, else en."""
    return (
        supported(preference)
        or supported(cookie)
        or from_accept_language(accept_language)
        or DEFAULT_LANGUAGE
    )
