"""A deliberately naive reference model of the end-user counter, written straight from docs/rules.md.

It shares no code with ``counters/`` or ``schemas/``: it keeps the raw state of every record and,
after every accepted event, recomputes every count of the subscription from scratch (countable
records, connected components over shared identifiers, classes, per-scope and per-provider counts),
then applies the capacity level rule. It is slow on purpose; it exists to be obviously right.

Decisions the rules leave open are those listed in the project's test brief (last-writer-wins per
field with ``>=``, untimed events newer than everything before them, tombstones, ...); a few more
are marked ``DECISION`` below.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable

import idna

NEG_INF = float("-inf")
# Untimed events get UNTIMED_BASE + arrival index: newer than any explicit time before year 5000.
UNTIMED_BASE = Fraction(10**11)

MAX_STR = 256
MAX_EMAIL = 254
TYPES = ("login", "profile", "visit", "config")
OPS = ("upsert", "deactivate", "activate", "delete")
CLASSES = ("internal", "external")
INVALID_EMAIL = object()  # an email field holding "no valid email"

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")


class Rejected(Exception):
    pass


# ----------------------------------------------------------------------------- normalization


def parse_time(value: str) -> Fraction:
    """RFC 3339 instant with a mandatory offset, as exact seconds since the epoch (UTC)."""
    import calendar
    import datetime as dt

    m = _TIME_RE.match(value)
    if not m:
        raise Rejected("unparseable time")
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    try:
        dt.datetime(y, mo, d, h, mi, s)  # validates ranges (no leap second 60)
    except ValueError as e:
        raise Rejected("unparseable time") from e
    frac = Fraction(m.group(7)[1:]) / 10 ** (len(m.group(7)) - 1) if m.group(7) else Fraction(0)
    off = m.group(8)
    offset = 0
    if off not in ("Z", "z"):
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            raise Rejected("unparseable time")
        offset = (oh * 3600 + om * 60) * (1 if off[0] == "+" else -1)
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - offset
    return Fraction(secs) + frac


def normalize_domain(domain: str) -> str | None:
    """IDNA ASCII lowercase domain without trailing dot, or None when not a valid domain. The UTS 46
    mapping first: it makes the other full stops (U+3002, U+FF0E, U+FF61) ASCII dots."""
    if any(c.isspace() for c in domain):
        return None
    try:
        domain = idna.uts46_remap(domain, std3_rules=False, transitional=False)
    except Exception:
        return None
    if domain.endswith("."):
        domain = domain[:-1]
    if "." not in domain:
        return None
    if any(label == "" for label in domain.split(".")):
        return None
    try:
        encoded = idna.encode(domain, uts46=True).decode("ascii").lower()
    except Exception:
        return None
    if encoded.endswith("."):
        encoded = encoded[:-1]
    if not encoded or "." not in encoded or any(lab == "" for lab in encoded.split(".")):
        return None
    return encoded


def normalize_email(raw: str) -> str | None:
    """Normalization (docs/rules.md): the normalized address, or None when it is not a valid address."""
    s = raw.strip()
    if not s or any(c.isspace() for c in s):
        return None
    at_positions = []
    in_quotes = False
    for i, c in enumerate(s):
        if c == '"':
            in_quotes = not in_quotes
        elif c == "@" and not in_quotes:
            at_positions.append(i)
    if len(at_positions) != 1:
        return None
    local, domain = s[: at_positions[0]], s[at_positions[0] + 1 :]
    if not local:
        return None
    nd = normalize_domain(domain)
    if nd is None:
        return None
    return local.lower() + "@" + nd


def normalize_username(raw: str) -> str | None:
    s = raw.strip().casefold()
    return s or None


def normalize_phone(raw: str) -> str | None:
    """Digits only, a leading '+' kept; None without any digit. DECISION: ASCII digits only."""
    s = raw.strip()
    digits = "".join(c for c in s if c in "0123456789")
    if not digits:
        return None
    return ("+" if s.startswith("+") else "") + digits


def normalize_owned(entry: str) -> tuple[str, str] | None:
    """('exact', domain) or ('wild', domain) for an owned-domain entry; None if invalid."""
    s = entry.strip()
    wild = False
    if s[:1] == "*" and s[1:2] in (".", "\u3002", "\uff0e", "\uff61"):  # the full stops UTS 46 maps to "."
        wild = True
        s = s[2:]
    elif s.startswith("@"):
        s = s[1:]
    nd = normalize_domain(s)
    if nd is None:
        return None
    return ("wild" if wild else "exact", nd)


def domain_owned(domain: str, owned: list[tuple[str, str]]) -> bool:
    for kind, d in owned:
        if kind == "exact" and domain == d:
            return True
        if kind == "wild" and domain.endswith("." + d):
            return True
    return False


def parse_version(v: str) -> tuple[int, ...]:
    if not _VERSION_RE.match(v):
        raise Rejected("unparseable version")
    return tuple(int(p) for p in v.split("."))


def version_lt(v: tuple[int, ...] | None, ref: tuple[int, ...]) -> bool:
    if v is None:  # no version: the newest
        return False
    n = max(len(v), len(ref))
    return v + (0,) * (n - len(v)) < ref + (0,) * (n - len(ref))


# ----------------------------------------------------------------------------- validation


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _opt_str(ev: dict, key: str, maxlen: int = MAX_STR) -> None:
    if key in ev and ev[key] is not None:
        v = ev[key]
        if not isinstance(v, str):
            raise Rejected(f"{key} must be a string")
        if len(v) > maxlen:
            raise Rejected(f"{key} too long")


def _str_default(ev: dict, key: str, default: str) -> str:
    """DECISION: runtime/tenant/provider given as null take their default."""
    v = ev.get(key)
    if v is None:
        return default
    if not isinstance(v, str):
        raise Rejected(f"{key} must be a string")
    if len(v) > MAX_STR:
        raise Rejected(f"{key} too long")
    return v


def _opt_bool(ev: dict, key: str) -> bool | None:
    """DECISION: a bool field given as null is as if absent."""
    v = ev.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise Rejected(f"{key} must be a bool")
    return v


def validate(line: str) -> dict:
    """Return a checked event dict with parsed fields, or raise Rejected."""

    def no_constants(c: str) -> Any:
        raise Rejected("not JSON")

    try:
        ev = json.loads(line, parse_constant=no_constants)
    except Rejected:
        raise
    except Exception as e:
        raise Rejected("not JSON") from e
    if not isinstance(ev, dict):
        raise Rejected("not an object")
    typ = ev.get("type")
    if not isinstance(typ, str) or typ not in TYPES:
        raise Rejected("unknown type")
    sub = ev.get("subscription")
    if not isinstance(sub, str):
        raise Rejected("subscription required")
    if len(sub) > MAX_STR:
        raise Rejected("subscription too long")
    eid = ev.get("id")
    if eid is not None and not isinstance(eid, str):  # DECISION: id is a string (or null)
        raise Rejected("id must be a string")
    _opt_str(ev, "id")
    t = ev.get("time")
    if t is not None:  # DECISION: a null time is as if absent
        if not isinstance(t, str):
            raise Rejected("time must be a string")
        parsed_time: Fraction | None = parse_time(t)
    else:
        parsed_time = None
    out: dict[str, Any] = {"type": typ, "subscription": sub, "id": eid, "time": parsed_time}

    if typ in ("login", "profile", "visit"):
        out["runtime"] = _str_default(ev, "runtime", "default")
        out["tenant"] = _str_default(ev, "tenant", "default")
        out["provider"] = _str_default(ev, "provider", "default")
        for key in ("username", "phone", "name"):
            _opt_str(ev, key)
        _opt_str(ev, "email", MAX_EMAIL)
        for key in ("username", "email", "phone", "name"):
            if key in ev:
                out[key] = ev[key]  # may be None (clears)

    if typ in ("login", "profile"):
        uid = ev.get("user_id")
        if _is_int(uid):
            uid = str(uid)
        if not isinstance(uid, str):
            raise Rejected("user_id required")
        if len(uid) > MAX_STR:
            raise Rejected("user_id too long")
        out["user_id"] = uid
        dt_ = _opt_bool(ev, "default_tenant")
        if dt_ is not None:
            out["default_tenant"] = dt_

    if typ == "profile":
        op = ev.get("op")
        if not isinstance(op, str) or op not in OPS:
            raise Rejected("unknown op")
        out["op"] = op
        act = _opt_bool(ev, "active")
        if act is not None:
            out["active"] = act
        exc = _opt_bool(ev, "excluded")
        if exc is not None:
            out["excluded"] = exc

    if typ == "visit":
        sid = ev.get("session_id")
        if not isinstance(sid, str):
            raise Rejected("session_id required")
        if len(sid) > MAX_STR:
            raise Rejected("session_id too long")
        out["session_id"] = sid

    if typ == "config":
        if "platform" in ev:
            if ev["platform"] not in ("o11", "odc"):
                raise Rejected("bad platform")
            out["platform"] = ev["platform"]
        if "domains" in ev:
            doms = ev["domains"]
            if not isinstance(doms, list):
                raise Rejected("domains must be a list")
            owned = []
            for d in doms:
                if not isinstance(d, str) or len(d) > MAX_STR:
                    raise Rejected("bad domain")
                nd = normalize_owned(d)
                if nd is None:
                    raise Rejected("bad domain")
                owned.append(nd)
            out["domains"] = owned
        if "capacity" in ev:
            cap = ev["capacity"]
            if not isinstance(cap, dict):
                raise Rejected("capacity must be an object")
            caps = {}
            for cls in CLASSES:
                if cls in cap:
                    v = cap[cls]
                    if v is not None and not (_is_int(v) and v >= 0):
                        raise Rejected("bad capacity")
                    caps[cls] = v
            out["capacity"] = caps
        if "thresholds" in ev:
            th = ev["thresholds"]
            if not isinstance(th, list) or not all(_is_int(x) and 1 <= x <= 1000 for x in th):
                raise Rejected("bad thresholds")
            out["thresholds"] = sorted(set(th))
        if "shared_identifier_threshold" in ev:
            # Only the shared-identifier report reads it; counting ignores it.
            t = ev["shared_identifier_threshold"]
            if t is not None and not (_is_int(t) and 1 <= t <= 1_000_000):
                raise Rejected("bad shared_identifier_threshold")
        if "hysteresis" in ev:
            h = ev["hysteresis"]
            if not (isinstance(h, (int, float)) and not isinstance(h, bool)) or not h >= 0:
                raise Rejected("bad hysteresis")
            out["hysteresis"] = Fraction(h)
        if "runtimes" in ev:
            rts = ev["runtimes"]
            if not isinstance(rts, dict):
                raise Rejected("runtimes must be an object")
            parsed = {}
            for rid, spec in rts.items():
                if len(rid) > MAX_STR or not isinstance(spec, dict):
                    raise Rejected("bad runtime")
                ver = spec.get("version")
                if ver is None:
                    parsed[rid] = None
                elif isinstance(ver, str) and len(ver) <= MAX_STR:
                    parsed[rid] = parse_version(ver)
                else:
                    raise Rejected("bad version")
            out["runtimes"] = parsed
        if "billing_day" in ev:
            day = ev["billing_day"]
            if day is not None and not (_is_int(day) and 1 <= day <= 31):
                raise Rejected("bad billing_day")
            out["billing_day"] = 1 if day is None else day  # DECISION: null means the default, 1
        if "dormant_days" in ev:
            days = ev["dormant_days"]
            if days is not None and not (_is_int(days) and 1 <= days <= 3650):
                raise Rejected("bad dormant_days")
            out["dormant_days"] = 90 if days is None else days  # DECISION: null means the default, 90
        for key, low, high, default in (("statement_grace", 0, 2160, 72), ("source_silence", 1, 8760, 24)):
            if key in ev:
                hours = ev[key]
                if hours is not None and not (_is_int(hours) and low <= hours <= high):
                    raise Rejected(f"bad {key}")
                out[key] = default if hours is None else hours  # DECISION: null means the default
        if "excluded_providers" in ev:
            providers = ev["excluded_providers"]
            if providers is None:
                providers = []  # DECISION: null means none
            if not isinstance(providers, list) or len(providers) > 1000:
                raise Rejected("excluded_providers must be a list")
            for p in providers:
                if not isinstance(p, str) or not p or len(p) > MAX_STR:
                    raise Rejected("bad provider")
            out["excluded_providers"] = set(providers)
    return out


# ----------------------------------------------------------------------------- state


@dataclass
class Record:
    fields: dict[str, tuple[Any, Any]]  # name -> (value, time)
    logged_in: bool = False
    updated: Any = NEG_INF
    last_login: Any = NEG_INF  # the time of the latest login, whatever order logins arrive in


@dataclass
class Sub:
    platform: str = "o11"
    owned: list[tuple[str, str]] = field(default_factory=list)
    capacity: dict[str, int | None] = field(default_factory=lambda: {"internal": None, "external": None})
    thresholds: list[int] = field(default_factory=lambda: [80, 90, 100])
    hysteresis: Fraction = Fraction(1)
    versions: dict[str, tuple[int, ...] | None] = field(default_factory=dict)
    records: dict[tuple[str, str, str, str], Record] = field(default_factory=dict)
    tombstones: dict[tuple[str, str, str, str], Any] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    levels: dict[str, int] = field(default_factory=lambda: {"internal": 0, "external": 0})
    key_times: dict[tuple[str, ...], Any] = field(default_factory=dict)
    config_ids: set[str] = field(default_factory=set)
    excluded_providers: set[str] = field(default_factory=set)
    dormant_days: int = 90


def _new_record() -> Record:
    return Record(fields={"active": (True, NEG_INF), "default_tenant": (True, NEG_INF)})


def _set(rec: Record, name: str, value: Any, t: Any) -> None:
    old = rec.fields.get(name)
    if old is None or t >= old[1]:
        rec.fields[name] = (value, t)


def _get(rec: Record, name: str) -> Any:
    v = rec.fields.get(name)
    return None if v is None else v[0]


def _email_value(raw: str | None) -> Any:
    if raw is None:
        return None
    n = normalize_email(raw)
    return INVALID_EMAIL if n is None else n


def _touch(sub: Sub, key: tuple, t: Any, *, create_active: bool | None = None) -> Record | None:
    """The record to apply an event of time t to (created if needed), or None when the event is not
    newer than the record's last delete (the record absent, or created afresh since: the event was
    meant for the deleted one)."""
    tomb = sub.tombstones.get(key)
    if tomb is not None and t <= tomb:
        return None
    rec = sub.records.get(key)
    if rec is None:
        rec = _new_record()
        if create_active is not None:
            rec.fields["active"] = (create_active, t)
        sub.records[key] = rec
    rec.updated = max(rec.updated, t)
    return rec


def _apply_identity(rec: Record, ev: dict, t: Any, *, skip_null: bool = False) -> None:
    for name in ("username", "email", "phone", "name"):
        if name not in ev:
            continue
        raw = ev[name]
        if raw is None and skip_null:
            continue
        if name == "email":
            _set(rec, "email", _email_value(raw), t)
        elif name == "username":
            _set(rec, "username", raw, t)  # raw kept; normalized when computing
        else:
            _set(rec, name, raw, t)


def apply_event(sub: Sub, ev: dict, t: Any) -> None:
    typ = ev["type"]
    if typ == "config":
        apply_config_keys(sub, ev)
        return
    if typ == "visit":
        raw_email = ev.get("email")
        raw_phone = ev.get("phone")
        raw_name = ev.get("name")
        email = normalize_email(raw_email) if raw_email is not None else None
        phone = normalize_phone(raw_phone) if raw_phone is not None else None
        has_name = raw_name is not None and raw_name.strip() != ""
        if email is None and phone is None and not has_name:
            sub.sessions.add(ev["session_id"])
            return
        uid = email if email is not None else (phone if phone is not None else ev["session_id"])
        key = (ev["runtime"], ev["tenant"], "visitor", uid)
        rec = _touch(sub, key, t)
        if rec is not None:
            _apply_identity(rec, ev, t, skip_null=True)
        return
    key = (ev["runtime"], ev["tenant"], ev["provider"], ev["user_id"])
    if typ == "login":
        rec = _touch(sub, key, t)
        if rec is None:
            return
        rec.logged_in = True
        rec.last_login = max(rec.last_login, t)
        _apply_identity(rec, ev, t)
        if "default_tenant" in ev:
            _set(rec, "default_tenant", ev["default_tenant"], t)
        return
    op = ev["op"]
    if op == "delete":
        rec = sub.records.get(key)
        tomb = sub.tombstones.get(key)
        if rec is None:
            sub.tombstones[key] = t if tomb is None else max(tomb, t)
        elif t >= rec.updated:  # newer than every event of the record, so newer than its last delete too
            del sub.records[key]
            sub.tombstones[key] = t
        return
    if op in ("deactivate", "activate"):
        active = op == "activate"
        rec = _touch(sub, key, t, create_active=active)
        if rec is not None:
            _set(rec, "active", active, t)
        return
    # upsert
    rec = _touch(sub, key, t)
    if rec is None:
        return
    _apply_identity(rec, ev, t)
    if "active" in ev:
        _set(rec, "active", ev["active"], t)
    if "default_tenant" in ev:
        _set(rec, "default_tenant", ev["default_tenant"], t)
    if "excluded" in ev:
        _set(rec, "excluded", ev["excluded"], t)


CONFIG_KEYS = ("platform", "domains", "capacity", "thresholds", "hysteresis", "runtimes", "excluded_providers",
               "billing_day", "dormant_days", "statement_grace", "source_silence")
MAP_KEYS = ("capacity", "runtimes")


def winning_config(sub: Sub, ev: dict, t: Any) -> dict:
    """DECISION (issue 16): config is last-writer-wins by time per key, like record fields (a tie
    applies); each class of ``capacity`` and each runtime of ``runtimes`` is a key of its own. An
    event whose id was applied before is an exact duplicate and sets nothing. Returns the event
    with only the keys it may set."""
    out = {k: v for k, v in ev.items() if k not in CONFIG_KEYS}
    if ev["id"] is not None:
        if ev["id"] in sub.config_ids:
            return out
        sub.config_ids.add(ev["id"])

    def wins(key: tuple[str, ...]) -> bool:
        last = sub.key_times.get(key)
        if last is not None and t < last:
            return False
        sub.key_times[key] = t
        return True

    for key in CONFIG_KEYS:
        if key not in ev:
            continue
        if key in MAP_KEYS:
            part = {name: v for name, v in ev[key].items() if wins((key, name))}
            if part:
                out[key] = part
        elif wins((key,)):
            out[key] = ev[key]
    return out


def apply_config_keys(sub: Sub, ev: dict) -> None:
    if "platform" in ev:
        sub.platform = ev["platform"]
    if "domains" in ev:
        sub.owned = list(ev["domains"])
    if "capacity" in ev:
        for cls, v in ev["capacity"].items():
            sub.capacity[cls] = v
    if "thresholds" in ev:
        sub.thresholds = list(ev["thresholds"])
    if "hysteresis" in ev:
        sub.hysteresis = ev["hysteresis"]
    if "runtimes" in ev:
        sub.versions.update(ev["runtimes"])
    if "excluded_providers" in ev:
        sub.excluded_providers = set(ev["excluded_providers"])
    if "dormant_days" in ev:
        sub.dormant_days = ev["dormant_days"]


# Per-subscription limits (docs/design.md, limits): an event that would pass one is rejected whole.
SETTINGS_RUNTIMES_LIMIT = 1000
RECORD_RUNTIMES_LIMIT = 1000
RECORD_PROVIDERS_LIMIT = 1000


def _record_key(ev: dict) -> tuple | None:
    """The record an event would create or change, None for an anonymous visit."""
    if ev["type"] == "visit":
        email = normalize_email(ev["email"]) if ev.get("email") is not None else None
        phone = normalize_phone(ev["phone"]) if ev.get("phone") is not None else None
        named = ev.get("name") is not None and ev["name"].strip() != ""
        if email is None and phone is None and not named:
            return None
        uid = email if email is not None else (phone if phone is not None else ev["session_id"])
        return (ev["runtime"], ev["tenant"], "visitor", uid)
    return (ev["runtime"], ev["tenant"], ev["provider"], ev["user_id"])


def over_limit(sub: Sub, ev: dict, t: Any) -> bool:
    """Whether the event would take the subscription past a limit: more runtimes in its settings, or
    a new record in a runtime or of a provider beyond those its records already have."""
    if ev["type"] == "config":
        if ev["id"] is not None and ev["id"] in sub.config_ids:
            return False
        return "runtimes" in ev and len(set(sub.versions) | set(ev["runtimes"])) > SETTINGS_RUNTIMES_LIMIT
    if ev["type"] == "profile" and ev["op"] == "delete":
        return False
    key = _record_key(ev)
    if key is None or key in sub.records:
        return False
    tomb = sub.tombstones.get(key)
    if tomb is not None and t <= tomb:
        return False
    runtimes = {k[0] for k in sub.records}
    providers = {k[2] for k in sub.records}
    return ((key[0] not in runtimes and len(runtimes) >= RECORD_RUNTIMES_LIMIT)
            or (key[2] not in providers and len(providers) >= RECORD_PROVIDERS_LIMIT))


# ----------------------------------------------------------------------------- counting


def _identifiers(rec: Record) -> set[str]:
    ids = set()
    e = _get(rec, "email")
    if isinstance(e, str):
        ids.add(e)
    u = _get(rec, "username")
    if u is not None:
        nu = normalize_username(u)
        if nu is not None:
            ids.add(nu)
    return ids


def _classification_email(rec: Record) -> str | None:
    e = _get(rec, "email")
    if isinstance(e, str):
        return e
    u = _get(rec, "username")
    if u is not None:
        # DECISION: the username is validated/normalized as an email from its raw (trimmed) form.
        return normalize_email(u)
    return None


def _would_count(sub: Sub, rec: Record) -> bool:
    if not _get(rec, "active"):
        return False
    if sub.platform == "odc" and not rec.logged_in:
        return False
    return True


def _not_an_end_user(sub: Sub, key: tuple, rec: Record) -> bool:
    """Accounts that are not end users: an excluded provider, or the record marked excluded."""
    return key[2] in sub.excluded_providers or _get(rec, "excluded") is True


def _countable(sub: Sub, key: tuple, rec: Record) -> bool:
    return _would_count(sub, rec) and not _not_an_end_user(sub, key, rec)


def _dedup_eligible(sub: Sub, key: tuple, rec: Record) -> bool:
    if sub.platform == "odc":
        return True
    v = sub.versions.get(key[0])
    if version_lt(v, (11, 11, 3)):
        return False
    return bool(_get(rec, "default_tenant"))


def _unclassified_runtime(sub: Sub, runtime: str) -> bool:
    return sub.platform == "o11" and version_lt(sub.versions.get(runtime), (11, 7, 0))


def _individuals(sub: Sub, keys: list[tuple]) -> list[list[tuple]]:
    """Connected components: dedup-eligible records sharing an identifier are one individual."""
    parent = {k: k for k in keys}

    def find(x: tuple) -> tuple:
        while parent[x] != x:
            x = parent[x]
        return x

    eligible = [k for k in keys if _dedup_eligible(sub, k, sub.records[k])]
    for i, a in enumerate(eligible):
        ia = _identifiers(sub.records[a])
        for b in eligible[i + 1 :]:
            if ia & _identifiers(sub.records[b]):
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[ra] = rb
    groups: dict[tuple, list[tuple]] = {}
    for k in keys:
        groups.setdefault(find(k), []).append(k)
    return list(groups.values())


def _class_of(sub: Sub, group: list[tuple]) -> str:
    if not sub.owned:
        return "internal"
    if any(_unclassified_runtime(sub, k[0]) for k in group):
        return "internal"
    emails = [_classification_email(sub.records[k]) for k in group]
    emails = [e for e in emails if e is not None]
    if not emails:
        return "internal"
    if any(domain_owned(e.rsplit("@", 1)[1], sub.owned) for e in emails):
        return "internal"
    return "external"


def _scope_counts(sub: Sub, keys: list[tuple]) -> dict[str, int]:
    out = {"internal": 0, "external": 0, "records": len(keys)}
    for g in _individuals(sub, keys):
        out[_class_of(sub, g)] += 1
    return out


def compute(sub: Sub) -> dict[str, Any]:
    countable = sorted(k for k, r in sub.records.items() if _countable(sub, k, r))
    doc = _scope_counts(sub, countable)
    runtimes = {}
    for rt in sorted({k[0] for k in countable}):
        runtimes[rt] = _scope_counts(sub, [k for k in countable if k[0] == rt])
    providers: dict[str, int] = {}
    for k in countable:
        providers[k[2]] = providers.get(k[2], 0) + 1
    doc["runtimes"] = runtimes
    doc["providers"] = dict(sorted(providers.items()))
    doc["excluded"] = sum(
        1 for k, r in sub.records.items() if _would_count(sub, r) and _not_an_end_user(sub, k, r)
    )
    doc["anonymous_sessions"] = len(sub.sessions)
    doc["levels"] = dict(sub.levels)
    return doc


# ----------------------------------------------------------------------------- dormancy


def dormancy(sub: Sub, now: Any, days: int) -> dict[str, Any]:
    """DECISION: a counted record is dormant unless it logged in after ``now - days`` (never: dormant).
    A person is reclaimable when none of their counted records logged in since: taking those records
    out of the countable ones lowers their class's count by one, which is checked here by recounting."""
    recent_after = now - days * 86400
    countable = sorted(k for k, r in sub.records.items() if _countable(sub, k, r))
    before = _scope_counts(sub, countable)
    records: dict[tuple, bool] = {}
    freed = {"internal": 0, "external": 0}
    for person in _individuals(sub, countable):
        quiet = [k for k in person if not sub.records[k].last_login > recent_after]
        if not quiet:
            continue
        left = [k for k in countable if k not in quiet]
        after = _scope_counts(sub, left)
        lowered = sum(after[c] for c in CLASSES) < sum(before[c] for c in CLASSES)
        for k in quiet:
            records[k] = lowered
        if lowered:
            for c in CLASSES:
                freed[c] += before[c] - after[c]
    return {"records": records, "freed": freed}


# ----------------------------------------------------------------------------- levels


def _reached(count: int, t: int, cap: int) -> bool:
    return count > 0 and count * 100 >= t * cap


def _held(count: int, t: int, cap: int, h: Fraction) -> bool:
    return count > 0 and count * 100 >= (t - h) * cap


def next_level(level: int, count: int, cap: int, thresholds: list[int], h: Fraction) -> int:
    up = max([t for t in thresholds if _reached(count, t, cap)], default=0)
    if up > level:
        return up
    hold = max([t for t in thresholds if t <= level and _held(count, t, cap, h)], default=0)
    if hold < level:
        return hold
    return level


def _trigger(event_id: Any) -> Any:
    """DECISION: a capacity event names its trigger only by an identifier-like id (ASCII letters, digits
    and ._:/+=#-, at most 256): free text may name a person."""
    if isinstance(event_id, str) and 0 < len(event_id) <= MAX_STR and all(
            c.isascii() and (c.isalnum() or c in "._:/+=#-") for c in event_id):
        return event_id
    return None


def evaluate_levels(
    name: str, sub: Sub, counts: dict, trigger: Any, thresholds_changed: bool
) -> list[dict]:
    events = []
    for cls in CLASSES:
        cap = sub.capacity[cls]
        prev = sub.levels[cls]
        count = counts[cls]
        if cap is None:
            sub.levels[cls] = 0
            continue
        if thresholds_changed:
            new = max([t for t in sub.thresholds if _reached(count, t, cap)], default=0)
        else:
            new = next_level(prev, count, cap, sub.thresholds, sub.hysteresis)
        if new != prev:
            sub.levels[cls] = new
            events.append(
                {
                    "subscription": name,
                    "user_class": cls,
                    "previous_level": prev,
                    "level": new,
                    "direction": "up" if new > prev else "down",
                    "count": count,
                    "capacity": cap,
                    "exceeded": count > cap,
                    "trigger": trigger,
                }
            )
    return events


# ----------------------------------------------------------------------------- replay


def model_replay(lines: Iterable[str], *, with_reasons: bool = False, states: dict[str, Sub] | None = None) -> dict:
    """The replay document; ``states``, when given, receives each subscription's final state."""
    subs: dict[str, Sub] = states if states is not None else {}
    capacity_events: list[dict] = []
    rejected = 0
    reasons: list[tuple[int, str]] = []
    arrival = 0
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            ev = validate(stripped)
        except Rejected as e:
            rejected += 1
            reasons.append((lineno, str(e)))
            continue
        arrival += 1
        t = ev["time"] if ev["time"] is not None else UNTIMED_BASE + arrival
        name = ev["subscription"]
        sub = subs.setdefault(name, Sub())
        if over_limit(sub, ev, t):
            rejected += 1
            reasons.append((lineno, "over a per-subscription limit"))
            continue
        thresholds_changed = False
        if ev["type"] == "config":
            ev = winning_config(sub, ev, t)
        if ev["type"] == "config" and "thresholds" in ev:
            thresholds_changed = set(ev["thresholds"]) != set(sub.thresholds)
        apply_event(sub, ev, t)
        counts = compute(sub)
        capacity_events.extend(evaluate_levels(name, sub, counts, _trigger(ev["id"]), thresholds_changed))
    doc = {
        "subscriptions": {name: compute(sub) for name, sub in sorted(subs.items())},
        "capacity_events": capacity_events,
        "rejected": rejected,
    }
    if with_reasons:
        doc["reasons"] = reasons
    return doc


# ----------------------------------------------------------------------------- admission


def admission(sub: Sub, key: tuple[str, str, str, str], email: str | None = None, username: str | None = None,
              default_tenant: bool | None = None) -> dict[str, Any]:
    """DECISION: the admission of a person is what a login of record ``key`` that also makes it
    active would do, recounted from scratch on a copy: the record (new, or as it stands) active and
    logged in, with the email and username given (only when it does not count already: a counted
    record is answered as it stands). Answers the class of the person's individual after, that
    class's count after and its level after (None when the record does not count even then)."""
    import copy

    before = compute(sub)
    trial = copy.deepcopy(sub)
    rec = trial.records.get(key)
    counted = rec is not None and _countable(trial, key, rec)
    if rec is None:
        rec = trial.records[key] = _new_record()
    rec.logged_in = True
    rec.fields["active"] = (True, NEG_INF)
    if not counted:
        if email is not None:
            rec.fields["email"] = (normalize_email(email), NEG_INF)
        if username is not None:
            rec.fields["username"] = (username, NEG_INF)
        if default_tenant is not None:
            rec.fields["default_tenant"] = (default_tenant, NEG_INF)
    if not _countable(trial, key, rec):
        return {"user_class": None, "count_after": None, "level_after": None, "adds": False}
    countable = sorted(k for k, r in trial.records.items() if _countable(trial, k, r))
    person = next(g for g in _individuals(trial, countable) if key in g)
    cls = _class_of(trial, person)
    after = _scope_counts(trial, countable)
    level = sub.levels[cls]
    if sub.capacity[cls] is not None and after[cls] != before[cls]:
        level = next_level(level, after[cls], sub.capacity[cls], sub.thresholds, sub.hysteresis)
    return {"user_class": cls, "count_after": after[cls], "level_after": level, "adds": after[cls] > before[cls]}
