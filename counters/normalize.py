"""Emails, usernames, domains and phones in their normalized forms (docs/rules.md, normalization).

Normalization decides identity: two records are the same person exactly when their normalized
identifiers are equal, so every comparison in the engine goes through these functions and nothing else.
"""

from __future__ import annotations

from functools import lru_cache

import idna


def normalize_domain(domain: str) -> str | None:
    """Lowercased IDNA ASCII form without a trailing dot; None when it is not a dotted domain name."""
    return _domain(domain.strip())


@lru_cache(maxsize=65_536)
def _domain(domain: str) -> str | None:
    if domain.endswith("."):
        domain = domain[:-1]
    if not domain or "." not in domain or any(c.isspace() for c in domain):
        return None
    labels = domain.split(".")
    if any(not label for label in labels):
        return None
    try:  # IDNA (UTS 46) for every domain, so ASCII names obey the same hostname rules
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    if len(ascii_domain) > 253:
        return None
    return ascii_domain


@lru_cache(maxsize=262_144)
def normalize_email(email: str) -> str | None:
    """The normalized address, or None when the address is not valid (docs/rules.md, normalization).

    Valid: one ``@`` outside double quotes, no whitespace, a non-empty local part, a domain with a dot.
    The whole address is lowercased; no plus-tag or dot stripping (that would merge different people).
    """
    email = email.strip()
    if not email or any(c.isspace() for c in email):
        return None
    at = _single_unquoted_at(email)
    if at is None or at == 0:
        return None
    domain = _domain(email[at + 1 :])
    if domain is None:
        return None
    return f"{email[:at].lower()}@{domain}"


def _single_unquoted_at(text: str) -> int | None:
    position = None
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == "@" and not quoted:
            if position is not None:
                return None
            position = index
    return None if quoted else position


def email_domain(normalized_email: str) -> str:
    """The domain of an already normalized email."""
    return normalized_email.rsplit("@", 1)[1]


def normalize_username(username: str) -> str | None:
    """Trimmed and case-folded; an empty username is no username."""
    folded = username.strip().casefold()
    return folded or None


def normalize_phone(phone: str) -> str | None:
    """Digits only, keeping a leading ``+``; None when the phone has no digit."""
    phone = phone.strip()
    digits = "".join(c for c in phone if c.isdigit() and c.isascii())
    if not digits:
        return None
    return ("+" if phone.startswith("+") else "") + digits


def normalize_owned_domain(entry: str) -> str | None:
    """An owned-domain entry: a leading ``@`` dropped; ``*.`` kept as the wildcard marker."""
    entry = entry.strip()
    if entry.startswith("@"):
        entry = entry[1:]
    if entry.startswith("*."):
        base = _domain(entry[2:])
        return None if base is None else "*." + base
    return _domain(entry)
