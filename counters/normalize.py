"""Emails, usernames, domains and phones in their normalized forms (docs/rules.md, normalization).

Normalization decides identity: two records are the same person exactly when their normalized
identifiers are equal, so every comparison in the engine goes through these functions and nothing else.
"""

from __future__ import annotations

import hmac
from functools import lru_cache
from typing import Any, TypeVar

import idna

from schemas.changes import Change
from schemas.codec import Rejection
from schemas.events import UNSET, ConfigEvent, InputEvent, LoginEvent, ProfileEvent, UnsetType, VisitEvent

T = TypeVar("T")

DEVELOPMENT_SECRET = b"endusers-development-secret-change-me"


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


class Digester:
    """Keyed digests of identifiers and record keys, so no personal data is stored at rest.

    HMAC-SHA256 truncated to 64 bits: collisions within one subscription's million identifiers have a
    probability near 3e-8, and the secret keeps digests from being reversed by a dictionary attack.
    Digests of recent values are memoized: logins repeat the same people over and over.

    Each subscription gets its own key, derived from the secret and its name (:meth:`for_subscription`,
    which :func:`to_change` applies), so one person's digests cannot be linked across licensees.
    ``per_subscription=False`` keeps the one shared key of earlier versions (ENDUSERS_DIGEST_SCOPE=shared),
    and their separator-joined record keys, for state built with it (see :func:`encode_parts`). The
    scoped digesters share one memo, so its bound holds whatever their number.
    """

    __slots__ = ("_secret", "_key", "_keyed", "_cached", "_scoped", "_per_subscription", "_joined")

    def __init__(self, secret: bytes = DEVELOPMENT_SECRET, *, per_subscription: bool = True) -> None:
        self._secret = secret
        self._key = secret
        self._keyed = hmac.new(secret, digestmod="sha256")
        self._cached = lru_cache(maxsize=262_144)(_keyed_digest)
        self._scoped: dict[str, Digester] = {}
        self._per_subscription = per_subscription
        self._joined = not per_subscription

    def __call__(self, *parts: str) -> str:
        return self._cached(self._keyed, parts, self._joined)

    def for_subscription(self, subscription: str) -> Digester:
        """The digester of one subscription: key = HMAC(secret, subscription), memo shared."""
        if not self._per_subscription:
            return self
        scoped = self._scoped.get(subscription)
        if scoped is None:
            scoped = Digester.__new__(Digester)
            scoped._secret, scoped._cached, scoped._scoped = self._secret, self._cached, {}
            scoped._per_subscription = False  # already scoped: it is its own subscription's digester
            scoped._joined = False
            scoped._key = hmac.digest(self._secret, b"endusers subscription key\x1f" +
                                      subscription.encode("utf-8", "surrogatepass"), "sha256")
            scoped._keyed = hmac.new(scoped._key, digestmod="sha256")
            self._scoped[subscription] = scoped
        return scoped


def _keyed_digest(keyed: hmac.HMAC, parts: tuple[str, ...], joined: bool) -> str:
    """HMAC-SHA256 of the parts, from a copy of the HMAC already keyed (``hmac.new(key)``): the copy skips
    hashing the key's two padded blocks, about 1.8x faster than ``hmac.digest(key, ...)``, same digest.
    The memo's entries hold the keyed HMAC, one object per key, so equal keys share entries."""
    mac = keyed.copy()
    mac.update("\x1f".join(parts).encode("utf-8", "surrogatepass") if joined else encode_parts(parts))
    return mac.digest()[:8].hex()


def encode_parts(parts: tuple[str, ...]) -> bytes:
    """The bytes a key of several parts is digested from: each part's UTF-8 length (4 bytes, big
    endian), then the part. Producers may send any character, so joining with a separator would let
    tenant ``a`` + provider ``b\x1fc`` and tenant ``a\x1fb`` + provider ``c`` become one record. A
    single part (an identifier, a session id) is its own encoding: there is nothing to separate.

    Only the one shared key of earlier versions (``per_subscription=False``) still joins with
    ``\x1f``: it exists to read state built by them, whose record keys were digested that way."""
    encoded = [part.encode("utf-8", "surrogatepass") for part in parts]
    if len(encoded) == 1:
        return encoded[0]
    return b"".join(len(part).to_bytes(4, "big") + part for part in encoded)


# --- events into changes -------------------------------------------------------------------------

VISITOR_PROVIDER = "visitor"
DEFAULT_THRESHOLDS = (80, 90, 100)
DEFAULT_HYSTERESIS = 1
DEFAULT_SHARED_IDENTIFIER_THRESHOLD = 5
DEFAULT_BILLING_DAY = 1


def to_change(event: InputEvent, digest: Digester, arrival_time: int) -> Change | Rejection:
    """Normalize a validated event; ``arrival_time`` is its time when it carries none (docs/rules.md, time and order)."""
    time = event.time if event.time is not None else arrival_time
    digest = digest.for_subscription(event.subscription)
    if isinstance(event, ConfigEvent):
        return _config_change(event, time)
    if isinstance(event, VisitEvent):
        return _visit_change(event, digest, time)
    return _record_change(event, digest, time)


def _record_change(event: LoginEvent | ProfileEvent, digest: Digester, time: int) -> Change:
    kind = "login" if isinstance(event, LoginEvent) else event.op
    change = Change(
        kind=kind,
        subscription=event.subscription,
        time=time,
        event_id=event.id,
        record=digest(event.runtime, event.tenant, event.provider, event.user_id),
        runtime=event.runtime,
        provider=event.provider,
    )
    if kind in ("login", "upsert"):
        given = {key for key in ("email", "username") if getattr(event, key) is not UNSET}
        _identity_fields(change, given, _given(event.email), _given(event.username), digest)
        if event.default_tenant is not None:
            change.fields["default_tenant"] = event.default_tenant
        if isinstance(event, ProfileEvent) and event.active is not None:
            change.fields["active"] = event.active
        if isinstance(event, ProfileEvent) and event.excluded is not None:
            change.fields["excluded"] = event.excluded
    return change


def _identity_fields(
    change: Change, given: set[str], email: str | None, username: str | None, digest: Digester
) -> None:
    if "email" in given:
        normalized = normalize_email(email) if email is not None else None
        change.invalid_email = email is not None and normalized is None
        change.fields["email"] = None if normalized is None else [digest(normalized), email_domain(normalized)]
    if "username" in given:
        login = normalize_username(username) if username is not None else None
        if login is None:
            change.fields["username"] = None
        else:
            as_email = normalize_email(login)
            change.fields["username"] = [digest(login), email_domain(as_email) if as_email else None]


def _visit_change(event: VisitEvent, digest: Digester, time: int) -> Change:
    """A visit that shares personal data upserts a visitor record; otherwise it is anonymous."""
    email = normalize_email(event.email) if event.email is not None else None
    phone = normalize_phone(event.phone) if event.phone is not None else None
    named = event.name is not None and event.name.strip() != ""
    common: dict[str, Any] = {"subscription": event.subscription, "time": time, "event_id": event.id}
    if email is None and phone is None and not named:
        return Change(kind="anonymous", record=digest(event.session_id), runtime=event.runtime,
                      invalid_email=event.email is not None, **common)
    user_id = email or phone or event.session_id
    change = Change(
        kind="upsert",
        record=digest(event.runtime, event.tenant, VISITOR_PROVIDER, user_id),
        runtime=event.runtime,
        provider=VISITOR_PROVIDER,
        **common,
    )
    given = {"email"} if event.email is not None else set()
    _identity_fields(change, given, event.email, None, digest)
    if event.default_tenant is not None:
        change.fields["default_tenant"] = event.default_tenant
    return change


_CONFIG_KEYS = ("platform", "domains", "capacity", "thresholds", "hysteresis", "runtimes",
                "shared_identifier_threshold", "billing_day", "excluded_providers")


def _given(value: T | UnsetType) -> T | None:
    """A field that may be absent (UNSET) as its value, absent read as null (the caller checks which)."""
    return None if isinstance(value, UnsetType) else value


def parse_version(version: str) -> list[int]:
    return [int(part) for part in version.split(".")]


def _config_change(event: ConfigEvent, time: int) -> Change | Rejection:
    """Each key present replaces the current value; a key given as null restores its default
    (``capacity: null`` makes both classes unlimited; ``runtimes`` merge, so null changes none)."""
    settings: dict[str, Any] = {}
    given = {key for key in _CONFIG_KEYS if getattr(event, key) is not UNSET}
    if "platform" in given:
        settings["platform"] = event.platform or "o11"
    if "domains" in given:
        domains = []
        for position, entry in enumerate(event.domains or ()):
            normalized = normalize_owned_domain(entry)
            if normalized is None:
                return Rejection(f"domains.{position}: {entry[:60]!r} is not a domain name")
            domains.append(normalized)
        settings["domains"] = sorted(set(domains))
    if "capacity" in given:
        capacity = event.capacity
        settings["capacity"] = {"internal": None, "external": None} if capacity is None else {
            key: getattr(capacity, key) for key in ("internal", "external") if getattr(capacity, key) is not UNSET
        }
    if "thresholds" in given:
        if event.thresholds is not None and not event.thresholds:
            return Rejection("thresholds: must list at least one percentage")
        settings["thresholds"] = sorted(set(event.thresholds or DEFAULT_THRESHOLDS))
    if "hysteresis" in given:
        settings["hysteresis"] = DEFAULT_HYSTERESIS if event.hysteresis is None else event.hysteresis
    if "shared_identifier_threshold" in given:
        threshold = event.shared_identifier_threshold
        settings["shared_identifier_threshold"] = DEFAULT_SHARED_IDENTIFIER_THRESHOLD if threshold is None else threshold
    if "runtimes" in given:
        settings["runtimes"] = {
            runtime: None if setting.version is None else parse_version(setting.version)
            for runtime, setting in (event.runtimes or {}).items()
        }
    if "billing_day" in given:
        settings["billing_day"] = event.billing_day or DEFAULT_BILLING_DAY
    if "excluded_providers" in given:
        settings["excluded_providers"] = sorted(set(event.excluded_providers or ()))
    return Change(kind="config", subscription=event.subscription, time=time, event_id=event.id, fields=settings)
