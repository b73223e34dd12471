"""Emails, usernames, domains and phones in their normalized forms (docs/rules.md, normalization).

Normalization decides identity: two records are the same person exactly when their normalized
identifiers are equal, so every comparison in the engine goes through these functions and nothing else.
"""

from __future__ import annotations

from functools import lru_cache

from schemas.domains import normalize_domain, normalize_owned_domain

__all__ = ["email_domain", "normalize_domain", "normalize_email", "normalize_owned_domain", "normalize_phone",
           "normalize_username"]


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
    domain = normalize_domain(email[at + 1 :])
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
