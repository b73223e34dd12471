"""Owned domains and the class of an individual (docs/rules.md, classes).

An individual's class depends only on its *signature*: the set of classification-email domains of its
records, or the marker for "contains a record that is never classified". Counts are therefore a sum over
a histogram of signatures, and a change of owned domains re-classifies distinct signatures, not users.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from schemas.outputs import UserClass

INTERNAL: Final = "internal"
EXTERNAL: Final = "external"
CLASSES: tuple[UserClass, ...] = (INTERNAL, EXTERNAL)

UNCLASSIFIED = "!"
"""Signature of an individual holding a record of an O11 runtime older than 11.7.0 (always internal)."""


def signature(domains: Iterable[str], unclassified: bool = False) -> str:
    """The canonical signature string: sorted distinct domains joined by spaces ("" when none)."""
    if unclassified:
        return UNCLASSIFIED
    return " ".join(sorted(set(domains)))


class OwnedDomains:
    """The owned domain entries of a subscription: exact names and ``*.`` wildcards on label boundaries."""

    __slots__ = ("entries", "_exact", "_wildcard_bases", "_classes")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.entries = tuple(sorted(set(entries)))
        self._exact = frozenset(e for e in self.entries if not e.startswith("*."))
        self._wildcard_bases = frozenset(e[2:] for e in self.entries if e.startswith("*."))
        self._classes: dict[str, str] = {}

    def owns(self, domain: str) -> bool:
        """``example.com`` owns exactly itself; ``*.example.com`` owns every proper subdomain."""
        if domain in self._exact:
            return True
        position = domain.find(".")
        while position != -1:
            if domain[position + 1 :] in self._wildcard_bases:
                return True
            position = domain.find(".", position + 1)
        return False

    def class_of(self, sig: str) -> str:
        """Internal when no domains are owned, when unclassified, when no record has a classification
        email, or when any record's classification email is in an owned domain; else external."""
        cached = self._classes.get(sig)
        if cached is not None:
            return cached
        if not self.entries or sig == UNCLASSIFIED or sig == "":
            result = INTERNAL
        else:
            result = INTERNAL if any(self.owns(d) for d in sig.split(" ")) else EXTERNAL
        self._classes[sig] = result
        return result
