"""Domain names in their normalized form: what a valid domain is, for owned domains and emails alike.

A contract rule (a config whose owned domain is not a domain name is rejected by the codec), so it lives
with the contracts: the input models check it and the engine's normalization (counters/normalize.py)
reads identities through the same functions, so the two can never disagree on what a domain is.
"""

from __future__ import annotations

from functools import lru_cache

import idna


@lru_cache(maxsize=65_536)
def normalize_domain(domain: str) -> str | None:
    """Lowercased IDNA ASCII form without a trailing dot; None when it is not a dotted domain name.

    The UTS 46 mapping comes first, then the trailing dot and the labels are checked: the mapping turns
    the other full stops (``。`` U+3002, ``．`` U+FF0E, ``｡`` U+FF61) and full-width letters into their
    ASCII forms, so ``corp.example。`` is ``corp.example`` and ``ｃｏｒｐ．example`` is ``corp.example``,
    as for any other client that resolves them.

    ``domain`` is already trimmed (an owned-domain entry is; an email is trimmed as a whole)."""
    if any(c.isspace() for c in domain):
        return None
    try:
        mapped = idna.uts46_remap(domain, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    if mapped.endswith("."):
        mapped = mapped[:-1]
    if not mapped or "." not in mapped or any(c.isspace() for c in mapped):
        return None
    if any(not label for label in mapped.split(".")):
        return None
    try:  # IDNA (UTS 46) for every domain, so ASCII names obey the same hostname rules
        ascii_domain = idna.encode(mapped, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    if len(ascii_domain) > 253:
        return None
    return ascii_domain


def normalize_owned_domain(entry: str) -> str | None:
    """An owned-domain entry: a leading ``@`` dropped; ``*.`` kept as the wildcard marker."""
    entry = entry.strip()
    if entry.startswith("@"):
        entry = entry[1:]
    if entry.startswith("*") and normalize_domain("a" + entry[1:2] + "b") == "a.b":  # any full stop
        base = normalize_domain(entry[2:])
        return None if base is None else "*." + base
    return normalize_domain(entry)
