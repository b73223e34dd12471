"""The dashboard stream's memory: each subscription's last values as serialized pieces, and a bounded
ring of recent changes.

A poll produces, per subscription, a few field groups (:data:`GROUPS`). Each group is serialized once,
in an admin's and a viewer's form, and compared with what was sent before: only groups whose bytes
differ become part of a change. A client's message is then put together from those bytes for its
scope (which subscriptions, which role), once per distinct scope, so a hundred dashboards cost one
serialization of each change. The ring keeps the recent changes with their sequence numbers: a
client that reconnects with ``Last-Event-ID`` gets the changes it missed, or a snapshot when its id
is older than the ring (or from another process).
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.http import auth

GROUPS: tuple[str, ...] = ("counts", "levels", "settings", "events", "trend")
"""The field groups of a subscription's entry, each sent only when it changed (``point`` rides along
with a change of ``internal`` or ``external``)."""

HOUR_MS = 3_600_000
SNAPSHOT_STEP_MS = 60_000
"""A snapshot's last-hour history holds at most one point per minute (the last of each)."""

VIEWER = auth.Grant("viewer", None)

Piece = tuple[bytes, bytes]
"""A group's members (``"key":value,...``, no braces) as an admin and as a viewer sees them."""

ViewKey = tuple[bool, frozenset[str] | None]
"""What shapes a client's messages: admin or not, and its scope (None: every subscription)."""


def view_key(grant: auth.Grant) -> ViewKey:
    return grant.admin, grant.scope


def _members(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields)[1:-1]


def _piece(group: str, fields: dict[str, Any]) -> Piece:
    admin = _members(fields)
    if group == "counts":
        return admin, _members(VIEWER.counts(fields))
    if group == "settings":
        return admin, _members({"settings": VIEWER.settings(fields.get("settings"))})
    return admin, admin


def _visible(key: ViewKey, subscription: str) -> bool:
    return key[1] is None or subscription in key[1]


@dataclass
class Tick:
    """One poll's changes: subscription -> its changed groups' pieces; and the subscriptions gone."""

    seq: int
    time: int
    changes: dict[str, list[Piece]]
    removed: list[str]
    _messages: dict[ViewKey, bytes | None] = field(default_factory=dict)

    def message(self, key: ViewKey) -> bytes | None:
        """The change's data for one scope (None: nothing in it), put together once per scope."""
        if key not in self._messages:
            subscriptions = [orjson.dumps(s) + b":{" + b",".join(p[0] if key[0] else p[1] for p in pieces) + b"}"
                             for s, pieces in self.changes.items() if _visible(key, s)]
            removed = [s for s in self.removed if _visible(key, s)]
            self._messages[key] = None if not subscriptions and not removed else (
                b'{"time":' + str(self.time).encode() + b',"subscriptions":{' + b",".join(subscriptions)
                + b'},"removed":' + orjson.dumps(removed) + b"}")
        return self._messages[key]


class Fleet:
    """The last values of every subscription and the ring of recent changes (see the module)."""

    def __init__(self, ring: int = 600) -> None:
        self.epoch = secrets.token_hex(4)
        """Names this process's sequence: an id from another worker or an earlier run gets a snapshot."""
        self.seq = 0
        self.time = 0
        self.pieces: dict[str, dict[str, Piece]] = {}
        self.history: dict[str, list[list[int]]] = {}
        self.totals: dict[str, tuple[int, int]] = {}
        self.ring: deque[Tick] = deque(maxlen=ring)
        self._entries: dict[tuple[str, bool], bytes] = {}
        self._snapshots: dict[ViewKey, tuple[int, bytes]] = {}

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def resumable(self, last_event_id: str | None) -> int | None:
        """The sequence number a client may resume from, or None when it needs a snapshot."""
        epoch, _, number = (last_event_id or "").strip().partition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        seq = int(number)
        return seq if self.covers(seq) else None

    def covers(self, seq: int) -> bool:
        """Whether every change after ``seq`` is still in the ring."""
        if seq > self.seq:
            return False
        return seq == self.seq or (bool(self.ring) and self.ring[0].seq <= seq + 1)

    def after(self, seq: int) -> list[Tick]:
        return [tick for tick in self.ring if tick.seq > seq]

    def update(self, now: int, current: dict[str, dict[str, dict[str, Any]]],
               histories: dict[str, list[list[int]]]) -> Tick | None:
        """Take one poll's groups (a group left out keeps its last value) and the histories of newly
        seen subscriptions; return the change, or None when nothing changed."""
        self.time = now
        changes: dict[str, list[Piece]] = {}
        for subscription, groups in current.items():
            changed = self._update_one(now, subscription, groups, histories.get(subscription))
            if changed:
                changes[subscription] = changed
        removed = sorted(set(self.pieces) - set(current))
        for subscription in removed:
            del self.pieces[subscription]
            self.history.pop(subscription, None)
            self.totals.pop(subscription, None)
            self._forget(subscription)
        if not changes and not removed:
            return None
        self.seq += 1
        tick = Tick(self.seq, now, changes, removed)
        self.ring.append(tick)
        return tick

    def _update_one(self, now: int, subscription: str, groups: dict[str, dict[str, Any]],
                    history: list[list[int]] | None) -> list[Piece]:
        known = self.pieces.get(subscription)
        new = known is None
        pieces = self.pieces.setdefault(subscription, {})
        before = self.totals.get(subscription)
        if "counts" in groups:
            counts = groups["counts"]
            self.totals[subscription] = (int(counts.get("internal", 0)), int(counts.get("external", 0)))
        changed = []
        for group in GROUPS:
            if group not in groups:
                continue
            admin = _members(groups[group])
            if group in pieces and pieces[group][0] == admin:
                continue
            pieces[group] = _piece(group, groups[group])
            changed.append(pieces[group])
        if not changed:
            return []
        self._forget(subscription)
        if new:
            self.history[subscription] = _last_hour(list(history or []), now)
            series = _members({"history": _thinned(self.history[subscription])})
            return [*changed, (series, series)]
        after = self.totals.get(subscription)
        if after != before and after is not None:
            point = [now, *after]
            self.history[subscription] = _last_hour([*self.history.get(subscription, []), point], now)
            members = _members({"point": point})
            changed.append((members, members))
        return changed

    def _forget(self, subscription: str) -> None:
        self._entries.pop((subscription, True), None)
        self._entries.pop((subscription, False), None)

    def snapshot(self, key: ViewKey) -> bytes:
        """Every subscription in scope with all its groups and its last hour, as of ``self.seq``."""
        cached = self._snapshots.get(key)
        if cached is not None and cached[0] == self.seq:
            return cached[1]
        entries = [orjson.dumps(s) + b":" + self._entry(s, key[0]) for s in sorted(self.pieces) if _visible(key, s)]
        data = b'{"time":' + str(self.time).encode() + b',"subscriptions":{' + b",".join(entries) + b"}}"
        self._snapshots[key] = (self.seq, data)
        return data

    def _entry(self, subscription: str, admin: bool) -> bytes:
        entry = self._entries.get((subscription, admin))
        if entry is None:
            pieces = self.pieces[subscription]
            members = [pieces[g][0] if admin else pieces[g][1] for g in GROUPS if g in pieces]
            members.append(_members({"history": _thinned(self.history.get(subscription, []))}))
            entry = self._entries[(subscription, admin)] = b"{" + b",".join(m for m in members if m) + b"}"
        return entry


def _last_hour(history: list[list[int]], now: int) -> list[list[int]]:
    return [p for p in history if p[0] >= now - HOUR_MS]


def _thinned(history: list[list[int]]) -> list[list[int]]:
    """The last point of each minute (a subscription that changes every second would otherwise send
    3,600 points per snapshot)."""
    kept: dict[int, list[int]] = {}
    for point in history:
        kept[point[0] // SNAPSHOT_STEP_MS] = point
    return list(kept.values())
