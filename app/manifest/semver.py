"""Semantic versions of plugins and of the platform (``MAJOR.MINOR.PATCH[-prerelease]``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering
from typing import Any

from app.core.i18n import N_
from app.manifest.vocabulary import SEMVER


@total_ordering
@dataclass(frozen=True)
class SemVer:
    """A semantic version ``MAJOR.MINOR.PATCH[-prerelease]``, ordered by semver precedence."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    def _key(self) -> tuple[Any, ...]:
        pre: tuple[tuple[int, int, str], ...] = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease
        )
        # A release sorts after every prerelease of the same version.
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{'.'.join(self.prerelease)}" if self.prerelease else core


def parse_version(text: str) -> SemVer:
    """Parse ``MAJOR.MINOR.PATCH[-prerelease]``; raise :class:`ValueError` if it is not one."""
    match = SEMVER.match(text)
    if match is None:
        raise ValueError(
            N_("'%(text)s' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)", text=text)
        )
    major, minor, patch, pre = match.groups()
    return SemVer(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else ())
