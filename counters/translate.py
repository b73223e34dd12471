"""Validated input events into the changes the engine applies (docs/rules.md, time and order).

The one translation both paths use: ingest in the live pipeline and the offline replay call
:func:`to_change`, so an event means the same change wherever it is read. Identifiers leave here
normalized and digested; a config event leaves with its defaults filled in.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any, TypeVar

from counters.classify import CLASSES
from counters.digest import Digester
from counters.normalize import email_domain, normalize_email, normalize_owned_domain, normalize_phone, normalize_username
from counters.state import DEFAULT_SOURCE_SILENCE, DEFAULT_STATEMENT_GRACE
from counters.state import DEFAULT_BILLING_DAY, DEFAULT_DORMANT_DAYS, DEFAULT_HYSTERESIS, DEFAULT_SHARED_IDENTIFIER_THRESHOLD, DEFAULT_THRESHOLDS
from schemas.changes import Change, ConfigFields
from schemas.events import UNSET, ConfigEvent, InputEvent, LoginEvent, ProfileEvent, UnsetType, VisitEvent

T = TypeVar("T")

VISITOR_PROVIDER = "visitor"


def to_change(event: InputEvent, digest: Digester, arrival_time: int) -> Change:
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
    if kind != "delete":
        change.fields["user"] = digest.sealer.seal(change.record, event.tenant, event.user_id)
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
        value = _email_value(digest, email) if email is not None else None
        change.invalid_email = email is not None and value is None
        change.fields["email"] = None if value is None else list(value)
    if "username" in given:
        login = _username_value(digest, username) if username is not None else None
        change.fields["username"] = None if login is None else list(login)


# Most events are logins of people seen a moment ago: their identifiers' values, memoized per
# (digester, raw value), skip normalizing, digesting and splitting off the domain again (each a call
# of its own, with a memo of its own). Each change still gets a list of its own. Both memos are
# bounded (``maxsize``); a domain is one string however many addresses share it.


@lru_cache(maxsize=65_536)
def _email_value(digest: Digester, email: str) -> tuple[str, str] | None:
    """``[digest, domain]`` of an email as given, None when it is not a valid address."""
    normalized = normalize_email(email)
    return None if normalized is None else (digest(normalized), sys.intern(email_domain(normalized)))


@lru_cache(maxsize=65_536)
def _username_value(digest: Digester, username: str) -> tuple[str, str | None] | None:
    """``[digest, domain-or-None]`` of a username as given (a domain when it reads as an email)."""
    login = normalize_username(username)
    if login is None:
        return None
    as_email = normalize_email(login)
    return digest(login), sys.intern(email_domain(as_email)) if as_email else None


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


def _given(value: T | UnsetType) -> T | None:
    """A field that may be absent (UNSET) as its value, absent read as null (the caller checks which)."""
    return None if isinstance(value, UnsetType) else value


def parse_version(version: str) -> list[int]:
    return [int(part) for part in version.split(".")]


def _config_change(event: ConfigEvent, time: int) -> Change:
    """Each key present replaces the current value; a key given as null restores its default
    (``capacity: null`` makes both classes unlimited; ``runtimes`` merge, so null changes none).
    The codec has checked every rule (schemas/events.py, ConfigEvent): nothing is refused here."""
    settings = ConfigFields()
    if not isinstance(event.platform, UnsetType):
        settings.platform = event.platform or "o11"
    if not isinstance(event.domains, UnsetType):
        settings.domains = sorted({domain for entry in event.domains or ()
                                   if (domain := normalize_owned_domain(entry)) is not None})
    if not isinstance(event.capacity, UnsetType):
        capacity = event.capacity
        settings.capacity = {key: None for key in CLASSES} if capacity is None else {
            key: value for key in CLASSES
            if not isinstance(value := getattr(capacity, key), UnsetType)}
    if not isinstance(event.thresholds, UnsetType):
        settings.thresholds = sorted(set(event.thresholds or DEFAULT_THRESHOLDS))
    if not isinstance(event.hysteresis, UnsetType):
        settings.hysteresis = DEFAULT_HYSTERESIS if event.hysteresis is None else event.hysteresis
    if not isinstance(event.shared_identifier_threshold, UnsetType):
        threshold = event.shared_identifier_threshold
        settings.shared_identifier_threshold = DEFAULT_SHARED_IDENTIFIER_THRESHOLD if threshold is None else threshold
    if not isinstance(event.runtimes, UnsetType):
        settings.runtimes = {runtime: None if setting.version is None else parse_version(setting.version)
                             for runtime, setting in (event.runtimes or {}).items()}
    if not isinstance(event.billing_day, UnsetType):
        settings.billing_day = event.billing_day or DEFAULT_BILLING_DAY
    if not isinstance(event.dormant_days, UnsetType):
        settings.dormant_days = event.dormant_days or DEFAULT_DORMANT_DAYS
    if not isinstance(event.statement_grace, UnsetType):
        settings.statement_grace = DEFAULT_STATEMENT_GRACE if event.statement_grace is None else event.statement_grace
    if not isinstance(event.source_silence, UnsetType):
        settings.source_silence = event.source_silence or DEFAULT_SOURCE_SILENCE
    if not isinstance(event.excluded_providers, UnsetType):
        settings.excluded_providers = sorted(set(event.excluded_providers or ()))
    return Change(kind="config", subscription=event.subscription, time=time, event_id=event.id, config=settings)
