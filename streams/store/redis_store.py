"""The Redis store: subscription states at rest, committed batch by batch, exactly once in effect.

Every key of a subscription shares the hash tag ``{subscription}`` (``streams.store.keys``), so the
commit script's keys sit in one slot and the step stays atomic on Redis Cluster. The worker keeps the states of the subscriptions it
counts in memory (the engine needs the identifier index to regroup); Redis holds the facts the
index is rebuilt from. A commit is refused when the stored position is not the one the worker's copy
was built from: a replayed batch, or a worker that lost its partition, writes nothing and reloads.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

import msgpack
import orjson

from counters import (
    ACTIVE,
    DAILY_DAYS,
    DEFAULT_TENANT,
    EXCLUDED,
    HOURLY_DAYS,
    LOGGED_IN,
    NEVER,
    STORED,
    SUBSCRIPTION_SCOPE,
    DigestCheck,
    DigestMismatch,
    DomainsReport,
    UNRECORDED,
    Position,
    Record,
    Store,
    SubscriptionSettings,
    SubscriptionState,
    DAY_US,
    UNNAMED,
    SOURCE_DAYS,
    SourceTally,
    LateTally,
    day_of,
    external_domains,
    hour_of,
    release_users,
    restore_in_steps,
    shared_identifiers_report,
)
from schemas.outputs import CapacityEvent
from streams.slices import yielding
from streams.store import audit
from streams.store.connect import AsyncClient, confirm_durably, connect, eval_durably
from streams.store.errors import translated
from streams.store.keys import INGESTED, POSITION, READ_MARKS_KEY, SUBSCRIPTIONS_KEY, Keys, text
from streams.store.reads import RedisReads

if TYPE_CHECKING:
    from streams.settings import WorkerSettings

log = logging.getLogger(__name__)

HISTORY_EVERY_MS = 10_000
DOMAINS_EVERY_MS = 5_000
HISTORY_LENGTH = 360  # one hour of samples
RECENT_EVENTS = 100
LOAD_CHUNK = 10_000
META_FIELDS = ("settings", "levels", "sequence", "invalid_emails", "config_times", "config_ids", "digest", "fence")


_COMMIT = """
local meta, records, tombstones, outbox, hll, counts, recent, history, shared, daily, hourly, trail =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local source, expected, nxt, fence, fenced = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if source ~= '' then
  -- the subscription's own fence, whatever partition the commit comes from, then its partition's position
  local stored, held = redis.call('HGET', meta, source), redis.call('HGET', meta, 'fence')
  if stored == false then stored = '' end
  if held == false then held = '' end
  if stored ~= expected or held ~= fence then return {0, stored, held} end
  redis.call('HSET', meta, source, nxt, 'fence', fenced)
end
local i = 6
local function take()
  local n = tonumber(ARGV[i]); i = i + 1; return n
end
for _ = 1, take() do redis.call('HSET', meta, ARGV[i], ARGV[i + 1]); i = i + 2 end
for _ = 1, take() do redis.call('HSET', records, ARGV[i], ARGV[i + 1]); i = i + 2 end
for _ = 1, take() do redis.call('HDEL', records, ARGV[i]); i = i + 1 end
for _ = 1, take() do redis.call('HSET', tombstones, ARGV[i], ARGV[i + 1]); i = i + 2 end
for _ = 1, take() do redis.call('HDEL', tombstones, ARGV[i]); i = i + 1 end
local events = take()
for _ = 1, events do
  redis.call('RPUSH', outbox, ARGV[i]); redis.call('LPUSH', recent, ARGV[i]); i = i + 1
end
if events > 0 then redis.call('LTRIM', recent, 0, %(recent)d) end
local sessions = take()
local j = 0
while j < sessions do
  local last = math.min(j + 500, sessions)
  redis.call('PFADD', hll, unpack(ARGV, i + j, i + last - 1))
  j = last
end
i = i + sessions
local anonymous = redis.call('PFCOUNT', hll)
local snapshot = ARGV[i]
local doc = cjson.decode(snapshot)
doc['anonymous_sessions'] = anonymous
redis.call('SET', counts, cjson.encode(doc))
local sample = ARGV[i + 1]
if sample ~= '' then
  redis.call('RPUSH', history, sample); redis.call('LTRIM', history, -%(history)d, -1)
end
local report = ARGV[i + 2]
if report ~= '' then redis.call('SET', shared, report) end
-- durable history (counters/history.py): per day and per hour, max,min,last of internal then external
local day, hour, ci, ce = ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6])
-- the highest and lowest counts the batch passed through (each event's, not only the last)
local hi, li, he, le = tonumber(ARGV[i + 9]), tonumber(ARGV[i + 10]), tonumber(ARGV[i + 11]), tonumber(ARGV[i + 12])
local pi, pe = ci, ce
local carried = redis.call('HGET', daily, '_last')
if carried then
  local a, b = string.match(carried, '^(%%d+),(%%d+)$'); pi, pe = tonumber(a), tonumber(b)
end
local function roll(key, period, oldest)
  local old = redis.call('HGET', key, period)
  local v
  if old then
    local t = {}
    for n in string.gmatch(old, '%%d+') do t[#t + 1] = tonumber(n) end
    v = {math.max(t[1], hi), math.min(t[2], li), ci, math.max(t[4], he), math.min(t[5], le), ce}
  else  -- the period's first commit: the count before it held at the period's start
    v = {math.max(pi, hi), math.min(pi, li), ci, math.max(pe, he), math.min(pe, le), ce}
    -- and, once per period, the entries past the retention go (a few hundred fields at most)
    for _, stored in ipairs(redis.call('HKEYS', key)) do
      if stored ~= '_last' and stored < oldest then redis.call('HDEL', key, stored) end
    end
  end
  redis.call('HSET', key, period, string.format('%%d,%%d,%%d,%%d,%%d,%%d', unpack(v)))
end
roll(daily, day, ARGV[i + 7])
roll(hourly, hour, ARGV[i + 8])
redis.call('HSET', daily, '_last', string.format('%%d,%%d', ci, ce))
-- the audit entries of the batch's config changes (streams/store/audit.py), newest first
i = i + 13
local audits = take()
for _ = 1, audits do redis.call('LPUSH', trail, ARGV[i]); i = i + 1 end
if audits > 0 then
  redis.call('LTRIM', trail, 0, %(audit)d)
  local kept, used = 0, 0  -- and at most AUDIT_BYTES of them, the newest always
  for _, item in ipairs(redis.call('LRANGE', trail, 0, -1)) do
    used = used + #item
    if kept > 0 and used > %(audit_bytes)d then break end
    kept = kept + 1
  end
  redis.call('LTRIM', trail, 0, kept - 1)
end
-- silent sources (counters/sources.py): each provider's latest event time, and its events per day
local sources, source_days = KEYS[13], KEYS[14]
for _ = 1, take() do
  local held = tonumber(redis.call('HGET', sources, ARGV[i]))
  if held == nil or held < tonumber(ARGV[i + 1]) then redis.call('HSET', sources, ARGV[i], ARGV[i + 1]) end
  i = i + 2
end
local oldest, created = tonumber(ARGV[i]), false
i = i + 1
for _ = 1, take() do
  local n = tonumber(ARGV[i + 1])
  if redis.call('HINCRBY', source_days, ARGV[i], n) == n then created = true end
  i = i + 2
end
if created then  -- a new day (or provider): the days past the retention go
  for _, stored in ipairs(redis.call('HKEYS', source_days)) do
    local day = tonumber(string.match(stored, '^d:(%%d+):'))
    if day == nil or day < oldest then redis.call('HDEL', source_days, stored) end
  end
end
-- late events per billing period (counters/late.py): how many, and per class the highest count after one
local periods = KEYS[15]
for _ = 1, take() do
  local start = ARGV[i]
  redis.call('HINCRBY', periods, start .. ':late', ARGV[i + 1])
  i = i + 2
  for _ = 1, take() do
    local field, count, day = start .. ':' .. ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
    local held = redis.call('HGET', periods, field)
    local before = nil
    if held then before = tonumber(string.match(held, '^(%%d+),')) end
    if before == nil or count > before then redis.call('HSET', periods, field, ARGV[i + 1] .. ',' .. day) end
    i = i + 3
  end
end
return {1, anonymous}
""" % {"recent": RECENT_EVENTS - 1, "history": HISTORY_LENGTH, "audit": audit.AUDIT_LENGTH - 1,
       "audit_bytes": audit.AUDIT_BYTES}


_CLOSE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then redis.call('RPUSH', KEYS[2], ARGV[2]); return 1 end
return 0
"""

_MARK = """
for i = 1, #ARGV, 2 do
  local held = tonumber(redis.call('HGET', KEYS[1], ARGV[i]))
  if held == nil or held < tonumber(ARGV[i + 1]) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
"""


class RedisSessions:
    """Anonymous sessions: added to the HyperLogLog at commit; the count is the one the commit saw."""

    def __init__(self, known: int = 0) -> None:
        self.pending: list[str] = []
        self.known = known

    def add(self, session: str) -> None:
        self.pending.append(session)

    def count(self) -> int:
        return self.known


def _position_args(position: Position | None, fence: bytes | None) -> list[str | bytes]:
    """The position field, the value the commit expects in it and the one it stores ('' for none),
    then the fence the commit expects and the one it stores (``_fence``)."""
    if position is None:
        return ["", "", "", "", ""]
    return [POSITION + position.source, "" if position.expected is None else str(position.expected),
            str(position.next), fence or b"", _fence(position)]


def _fence(position: Position) -> bytes:
    """What a commit leaves in the subscription's ``fence`` field: the partition and offset it came from.

    The position fences a partition; the fence fences the subscription. If the changes topic gains
    partitions, a subscription's key maps to another partition, and the worker of the new one and the
    worker still draining the old one would each pass its own partition's check, both writing from a
    copy the other does not see. Every commit expects the fence its copy was loaded or last committed
    with, so one of them is refused and reloads."""
    return f"{position.source}:{position.next}".encode()


def _meta_fields(state: SubscriptionState) -> dict[str, bytes]:
    """Every field of the meta hash as the state has it now (a commit sends those that changed)."""
    return {
        "settings": orjson.dumps(state.settings.to_dict()),
        "levels": orjson.dumps(state.levels),
        "sequence": orjson.dumps(state.sequence),
        "invalid_emails": str(state.invalid_emails).encode(),
        "config_times": orjson.dumps(state.config_times),
        "config_ids": orjson.dumps(state.config_ids),
        **{INGESTED + source: str(offset).encode() for source, offset in state.ingested.items()},
    }


def _record_args(state: SubscriptionState) -> list[Any]:
    """The changed records and tombstones, each counted list followed by its items: records to put,
    records to delete, tombstones to put, tombstones to delete."""
    put_records: list[bytes | str] = []
    put_tombs: list[bytes | str] = []
    del_records: list[bytes] = []
    del_tombs: list[bytes] = []
    for ref in state.dirty:
        record, key = state.records.get(ref), bytes.fromhex(ref)
        if record is None:
            del_records.append(key)
        else:
            put_records += [key, pack_record(record)]
        if ref in state.tombstones:  # a record created afresh after a delete keeps the delete's time
            put_tombs += [key, str(state.tombstones[ref])]
        else:
            del_tombs.append(key)
    return [len(put_records) // 2, *put_records, len(del_records), *del_records,
            len(put_tombs) // 2, *put_tombs, len(del_tombs), *del_tombs]


def _late_args(tally: LateTally) -> list[Any]:
    """The batch's late events per period: start, how many, then per class (count, day)."""
    args: list[Any] = [len(tally.events)]
    for start, events in tally.events.items():
        peaks = tally.peaks.get(start, {})
        args += [start, events, len(peaks)]
        for user_class, (count, day) in peaks.items():
            args += [user_class, count, day]
    return args


def _settle(state: SubscriptionState, position: Position | None, anonymous: int) -> None:
    """The state after its commit landed: at the stored position, nothing pending, and the anonymous
    sessions as the commit counted them."""
    if position is not None:
        state.positions[position.source] = position.next
    release_users(state)  # stored now: Redis keeps the sealed ids, the worker does not
    state.dirty.clear()
    state.extremes.clear()
    state.source_tally.clear()
    state.late_tally.clear()
    state.shared_changed = False
    if isinstance(state.sessions, RedisSessions):
        state.sessions.pending.clear()
        state.sessions.known = anonymous


def _committed(state: SubscriptionState, meta: dict[str, bytes | str], sources: Mapping[bytes, bytes]
               ) -> SubscriptionState:
    """A state being loaded, with what the meta hash and the sources hash hold (its records follow)."""
    if "settings" in meta:
        state.settings = SubscriptionSettings.from_dict(orjson.loads(meta["settings"]))
        state.levels = orjson.loads(meta["levels"])
        state.sequence = orjson.loads(meta["sequence"])
        state.invalid_emails = int(meta.get("invalid_emails", b"0"))
    if "config_times" in meta:
        state.config_times = orjson.loads(meta["config_times"])
        state.config_ids = orjson.loads(meta["config_ids"])
    state.positions = _positions(meta)
    state.ingested = _fields(meta, INGESTED)
    state.source_last = {text(provider): int(at) for provider, at in sources.items()}
    return state


class RedisStore(RedisReads, Store, DigestCheck):
    """The ports of ``counters.ports`` over Redis: the states and their commits, the outbox, and the
    committed reads (``RedisReads``). Every Redis error comes out as ``StoreUnavailable``."""

    def __init__(self, redis: AsyncClient, clock: Callable[[], float] = time.time, replicas: int = 0,
                 wait_ms: int = 1000) -> None:
        super().__init__(redis)
        self.clock = clock
        """Seconds since the epoch: the instant a commit's counts hold from (history periods)."""
        self.replicas = replicas
        """Replicas that must confirm each commit (``ENDUSERS_REDIS_MIN_REPLICAS``)."""
        self.wait_ms = wait_ms
        self._states: dict[str, SubscriptionState] = {}
        self._loading: dict[str, asyncio.Future[SubscriptionState]] = {}
        self._written: dict[str, dict[str, bytes]] = {}
        """Subscription -> the meta fields as last read or written: a commit sends only those that
        changed (the settings of a subscription with thousands of owned domains weigh hundreds of KB)."""
        self.progress: dict[str, tuple[int, int]] = {}
        """Subscription -> (records loaded, records to load) while a load runs (for /readyz)."""
        self._last_sample: dict[str, int] = {}
        self._domains: dict[str, tuple[float, tuple[int, int, tuple[str, ...]], DomainsReport]] = {}
        self._listed: set[str] = set()
        self._commit = redis.register_script(_COMMIT)
        self._mark = redis.register_script(_MARK)
        self._close = redis.register_script(_CLOSE)
        self.fingerprint: str | None = None
        """How the worker digests (``Digester.fingerprint``): written with each commit as the meta
        field ``digest``; a load that finds another one raises ``DigestMismatch``. None: not checked."""
        self.adopt_unrecorded = False
        """Whether a committed state without a recorded fingerprint is taken as this worker's
        (development only: in production nothing proves it was digested the same way)."""

    @classmethod
    def from_url(cls, url: str, replicas: int = 0, wait_ms: int = 1000, sentinel_password: str | None = None
                 ) -> RedisStore:
        """One server, Redis Cluster or Sentinel, by the URL's scheme (``streams.store.connect``)."""
        return cls(connect(url, sentinel_password), replicas=replicas, wait_ms=wait_ms)

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> RedisStore:
        """The store ``ENDUSERS_REDIS`` (and ``ENDUSERS_REDIS_MIN_REPLICAS``, ``_WAIT_TIMEOUT_MS``,
        ``_SENTINEL_PASSWORD``) names."""
        return cls.from_url(settings.redis, replicas=settings.redis_min_replicas, wait_ms=settings.redis_wait_timeout_ms,
                            sentinel_password=settings.sentinel_password())

    # --- the write side ---------------------------------------------------------------------------

    @translated
    async def load(self, subscription: str) -> SubscriptionState:
        """The cached state, else the committed one read from Redis. Concurrent callers (the count
        stage and an adoption) share one read."""
        state = self._states.get(subscription)
        if state is not None:
            return state
        loading = self._loading.get(subscription)
        if loading is None:
            loading = self._loading[subscription] = asyncio.ensure_future(self._read(subscription, users=False))
            loading.add_done_callback(lambda _: self._loading.pop(subscription, None))
        return self._states.setdefault(subscription, await asyncio.shield(loading))

    def forget(self, subscription: str) -> None:
        self._states.pop(subscription, None)
        self._written.pop(subscription, None)

    def cached(self, subscription: str) -> SubscriptionState | None:
        return self._states.get(subscription)

    async def _read(self, subscription: str, users: bool = True) -> SubscriptionState:
        """Reads and rebuilds in slices of at most ``streams.slices.SLICE_SECONDS`` of work, yielding to
        the event loop in between: a million records take seconds, during which heartbeats, /healthz
        and the other subscriptions must keep moving. Without ``users`` (a worker's), sealed ids stay in Redis."""
        keys = Keys(subscription)
        # two round trips: an adoption after a rebalance reads many subscriptions
        # (redis-py refuses PFCOUNT in a Redis Cluster pipeline, so it goes on its own)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.meta)
            pipe.hlen(keys.records)
            pipe.hlen(keys.tombstones)
            pipe.hgetall(keys.sources)
            raw_meta, records, tombstones, sources = await pipe.execute()
        sessions = await self.redis.pfcount(keys.sessions)
        meta: dict[str, bytes | str] = {text(k): v for k, v in raw_meta.items()}
        self._check_digests(subscription, meta)  # before the records
        total = int(records) + int(tombstones)
        self.progress[subscription] = (0, total)
        try:
            state = _committed(SubscriptionState(subscription, RedisSessions(int(sessions))), meta, sources)
            done = 0
            records_of = state.records
            async for chunk in self._scan(keys.records):
                for ref, packed in chunk.items():
                    records_of[ref.hex()] = record = unpack_record(packed)
                    if not users and record.user:
                        record.user = STORED
                done += len(chunk)
                self.progress[subscription] = (done, total)
            tombstones_of = state.tombstones
            async for chunk in self._scan(keys.tombstones):
                for ref, tombstone in chunk.items():
                    tombstones_of[ref.hex()] = int(tombstone)
                done += len(chunk)
            self.progress[subscription] = (done, total)
            await yielding(restore_in_steps(state))
        finally:
            self.progress.pop(subscription, None)
        self._written[subscription] = {k: v if isinstance(v, bytes) else v.encode() for k, v in meta.items()
                                       if k in META_FIELDS}
        return state

    def _check_digests(self, subscription: str, meta: dict[str, bytes | str]) -> None:
        """Raise ``DigestMismatch`` when the committed state was digested otherwise, or records no
        fingerprint and this worker may not adopt it (``adopt_unrecorded``)."""
        if self.fingerprint is None:
            return
        stored = text(meta["digest"]) if "digest" in meta else UNRECORDED if "settings" in meta else None
        if stored is not None and stored != self.fingerprint and not (stored == UNRECORDED and self.adopt_unrecorded):
            raise DigestMismatch(subscription, stored, self.fingerprint)

    async def _scan(self, key: str) -> AsyncIterator[dict[bytes, bytes]]:
        """A hash in HSCAN chunks of about ``LOAD_CHUNK`` fields, the next chunk already requested
        while the caller decodes this one (Redis answers while the worker unpacks). Each chunk is
        one await: a few milliseconds of decoding between two yields to the event loop."""
        reply = asyncio.ensure_future(self.redis.hscan(key, 0, count=LOAD_CHUNK))
        try:
            while True:
                cursor, chunk = await reply
                if cursor:
                    reply = asyncio.ensure_future(self.redis.hscan(key, cursor, count=LOAD_CHUNK))
                yield cast(dict[bytes, bytes], chunk)  # this client does not decode responses
                if not cursor:
                    return
        finally:
            if not reply.done():
                reply.cancel()

    @translated
    async def commit(
        self, state: SubscriptionState, position: Position | None, events: Sequence[CapacityEvent],
        audits: Sequence[dict[str, Any]] = (), retried: bool = False,
    ) -> bool:
        """``retried``: the same commit raised a connection error before; a refusal that finds the
        position this commit stores means that attempt did land (with its events and audit entries,
        so nothing is written again)."""
        keys = Keys(state.subscription)
        written = self._written.get(state.subscription, {})
        fields = _meta_fields(state) if self.fingerprint is None else \
            {**_meta_fields(state), "digest": self.fingerprint.encode()}
        meta = {field: value for field, value in fields.items() if written.get(field) != value}
        await self._read_back_users(state)
        sessions = state.sessions
        pending = sessions.pending if isinstance(sessions, RedisSessions) else []
        tally = state.source_tally.capped(int(self.clock() * 1_000_000))
        args = [*_position_args(position, written.get("fence")), len(meta), *(item for pair in meta.items() for item in pair),
                *_record_args(state), len(events), *(e.to_bytes() for e in events), len(pending), *pending,
                *self._read_side_args(state), len(audits), *(orjson.dumps(entry) for entry in audits),
                *self._source_args(tally), *_late_args(state.late_tally)]
        await self._register(state.subscription)
        ok, value, *held = await eval_durably(self.redis, self._commit, keys.commit_keys(), args, self.replicas,
                                              self.wait_ms)
        if not ok and retried and position is not None and text(value) == str(position.next) \
                and held == [_fence(position)]:
            # the previous attempt failed on the way back (a lost reply, or too few replicas confirmed
            # it), not in Redis: it is ours, once the replicas have it
            await confirm_durably(self.redis, keys.meta, self.replicas, self.wait_ms)
            ok, value = 1, str(await self.redis.pfcount(keys.sessions)).encode()
        if not ok:
            log.info("commit refused for %s: stored position %r and fence %r, expected %r and %r",
                     state.subscription, value, held, position, written.get("fence"))
            return False
        self._written[state.subscription] = {**written, **meta}
        if position is not None:
            self._written[state.subscription]["fence"] = _fence(position)
        _settle(state, position, int(value))
        for provider, at in tally.last.items():
            state.source_last[provider] = max(at, state.source_last.get(provider, at))
        return True

    async def _read_back_users(self, state: SubscriptionState) -> None:
        """The sealed ids of the changed records that hold none in memory (``STORED``): a record is
        written whole, so its stored id is read back first. Rare: every change ingest makes carries
        the id, so only changes without one (from a version before ids) lead here."""
        refs = [ref for ref in state.dirty if (record := state.records.get(ref)) is not None and record.user is STORED]
        if not refs:
            return
        stored = await self.redis.hmget(Keys(state.subscription).records, [bytes.fromhex(ref) for ref in refs])
        for ref, packed in zip(refs, stored):
            state.records[ref].user = None if packed is None else unpack_record(cast(bytes, packed)).user

    def _read_side_args(self, state: SubscriptionState) -> list[Any]:
        """What the script writes for readers: the counts document, a history sample (at most every
        HISTORY_EVERY_MS), the shared-identifier report when it changed, and the durable history's
        periods (now and the oldest kept)."""
        summary = state.summary()
        # the read side's document also says where external users come from
        args: list[Any] = [orjson.dumps({**summary, "external_domains": self._external_domains(state)})]
        now = int(self.clock() * 1000)
        instant = datetime.fromtimestamp(now / 1000, tz=timezone.utc)
        if now - self._last_sample.get(state.subscription, 0) >= HISTORY_EVERY_MS:
            args.append(orjson.dumps([now, summary["internal"], summary["external"]]))
            self._last_sample[state.subscription] = now
        else:
            args.append("")
        args.append(orjson.dumps(shared_identifiers_report(state)) if state.shared_changed else "")
        args += [day_of(instant), hour_of(instant), summary["internal"], summary["external"],
                 day_of(instant - timedelta(days=DAILY_DAYS)), hour_of(instant - timedelta(days=HOURLY_DAYS))]
        for user_class in ("internal", "external"):  # the extremes include the count committed now
            count = summary[user_class]
            low, high = state.extremes.get(user_class, (count, count))
            args += [max(high, count), min(low, count)]
        return args

    def _source_args(self, tally: SourceTally) -> list[Any]:
        """The batch's events per user provider (times after now already taken as now), and the
        oldest day kept."""
        today = int(self.clock() * 1_000_000) // DAY_US
        args: list[Any] = [len(tally.last), *(item for pair in tally.last.items() for item in pair),
                           today - SOURCE_DAYS + 1, len(tally.days)]
        for (provider, day), events in tally.days.items():
            args += [f"d:{day}:{provider}", events]
        return args

    async def _register(self, subscription: str) -> None:
        """Before the commit, not after: a crash in between must not leave committed capacity events
        in an outbox that no sweep finds. (The registry has no hash tag, so it cannot join the commit
        script on Redis Cluster.) A registered subscription without a commit yet is skipped by every
        reader: see ``subscriptions``."""
        if subscription not in self._listed:
            await self.redis.sadd(SUBSCRIPTIONS_KEY, subscription)
            self._listed.add(subscription)

    @translated
    async def confirm(self, subscription: str) -> None:
        """Wait until the replicas have what Redis holds for ``subscription`` (no-op without
        ``ENDUSERS_REDIS_MIN_REPLICAS``): a batch found already applied after an unconfirmed commit
        is acknowledged to Kafka only then."""
        await confirm_durably(self.redis, Keys(subscription).meta, self.replicas, self.wait_ms)

    # --- the read marks ---------------------------------------------------------------------------

    @translated
    async def read_marks(self, sources: Sequence[str]) -> dict[str, int]:
        found = await self.redis.hmget(READ_MARKS_KEY, list(sources)) if sources else []
        return {source: int(mark) for source, mark in zip(sources, found) if mark is not None}

    @translated
    async def mark_read(self, marks: Mapping[str, int]) -> None:
        """One round trip per batch; never lowers a mark (a re-read passes below it)."""
        await self._mark(keys=[READ_MARKS_KEY], args=[item for pair in marks.items() for item in pair])

    # --- the outbox -------------------------------------------------------------------------------

    @translated
    async def outbox(self, subscription: str, kind: str = "capacity") -> list[bytes]:
        entries = await self.redis.lrange(Keys(subscription).outbox_of(kind), 0, -1)
        return [entry if isinstance(entry, bytes) else entry.encode() for entry in entries]

    @translated
    async def outbox_sent(self, subscription: str, entries: Sequence[bytes], kind: str = "capacity") -> None:
        """Drop these entries, once Kafka has acknowledged them: each by its value (its id is unique),
        never by position. Several workers sweep the same outbox; a trim by count could delete an
        event that another worker committed after this one read the list, and it would never be
        published. An entry that another worker already removed is simply not found."""
        key = Keys(subscription).outbox_of(kind)
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.lrem(key, 1, entry.decode())
            await pipe.execute()

    @translated
    async def close_statement(self, subscription: str, start: str, statement: bytes) -> bool:
        """Freeze a period's statement and queue it for Kafka in one step, once: False when another
        worker (or an earlier attempt) froze it first, which then queued it alone."""
        keys = Keys(subscription)
        return bool(await self._close(keys=[keys.statements, keys.statement_outbox], args=[start, statement]))

    def _external_domains(self, state: SubscriptionState) -> DomainsReport:
        """The report is O(distinct signatures), too costly for every batch of a subscription with
        thousands of foreign domains. It is recomputed when the external count or the number
        of signatures changed, and at least every DOMAINS_EVERY_MS; only a change that keeps both (a
        person's email moving from one foreign domain to another) shows up to that much later."""
        now = self.clock() * 1000
        fingerprint = (state.count("external"), len(state.scopes[SUBSCRIPTION_SCOPE].histogram),
                       state.settings.domains.entries)
        cached = self._domains.get(state.subscription)
        if cached is None or cached[1] != fingerprint or now - cached[0] >= DOMAINS_EVERY_MS:
            cached = self._domains[state.subscription] = (now, fingerprint, external_domains(state))
        return cached[2]

    @translated
    async def fresh_state(self, subscription: str) -> SubscriptionState | None:
        """The committed state read anew (never the worker's live copy): O(records), for a preview."""
        if not await self.redis.hexists(Keys(subscription).meta, "settings"):
            return None
        return await self._read(subscription)


def pack_record(record: Record) -> bytes:
    """A record at rest in about 50 bytes, plus its sealed id (about 25 with the default tenant):
    msgpack, digests as 8 raw bytes, each field time (the last login among them) as its distance back
    from the record's latest time (usually 0, one byte), unset times as nil, the four flags as one
    small int, a runtime or provider ``UNNAMED`` as nil.

    Redis keeps the value in a jemalloc size class (an sds: 4 bytes more than the value): at most 76
    bytes fit the 80-byte class, 77 to 92 the 96-byte one (docs/benchmarks.md, Redis memory)."""
    updated = record.updated

    def age(time: int) -> int | None:
        return None if time == NEVER else updated - time

    email, username, runtime, provider = record.email_id, record.username_id, record.runtime, record.provider
    return bytes(msgpack.packb([
        (record.flags & _STORED_FLAGS) >> _FLAG_SHIFT, None if runtime == UNNAMED else runtime,
        None if provider == UNNAMED else provider,
        None if email is None else [bytes.fromhex(email), record.email_domain], age(record.email_t),
        None if username is None else [bytes.fromhex(username), record.username_domain], age(record.username_t),
        age(record.active_t), age(record.default_tenant_t), updated, age(record.excluded_t),
        age(record.last_login), record.user,
    ]))


_STORED_FLAGS = ACTIVE | DEFAULT_TENANT | LOGGED_IN | EXCLUDED
"""The flags a record keeps at rest (its kind is derived on load), stored shifted down to 0..15."""
_FLAG_SHIFT = 4
_COMPACT = 13
"""The length of the layout ``pack_record`` writes; earlier layouts had 12, 14 or 16 items."""


def unpack_record(packed: bytes) -> Record:
    """The record ``pack_record`` stored, or one an earlier version stored (records stored before a
    field existed keep its default).

    A takeover unpacks a million of these, so this is written for speed: one C decode, one C
    construction; a field time at distance 0 shares the ``updated`` int instead of a copy."""
    values = _unpackb(packed)
    if len(values) != _COMPACT:
        values = _from_listed(values)
    updated = values[9]
    email, username = values[3], values[5]
    email_id, email_domain = (None, None) if email is None else \
        (email[0].hex(), None if email[1] is None else _intern(email[1]))
    username_id, username_domain = (None, None) if username is None else \
        (username[0].hex(), None if username[1] is None else _intern(username[1]))
    age = values[4]
    email_t = NEVER if age is None else updated if age == 0 else updated - age
    age = values[6]
    username_t = NEVER if age is None else updated if age == 0 else updated - age
    age = values[7]
    active_t = NEVER if age is None else updated if age == 0 else updated - age
    age = values[8]
    default_tenant_t = NEVER if age is None else updated if age == 0 else updated - age
    age = values[10]
    excluded_t = NEVER if age is None else updated if age == 0 else updated - age
    age = values[11]
    last_login = NEVER if age is None else updated if age == 0 else updated - age
    runtime, provider = values[1], values[2]
    return Record(UNNAMED if runtime is None else _intern(runtime), UNNAMED if provider is None else _intern(provider),
                  updated, email_id, email_domain, email_t, username_id, username_domain, username_t, active_t,
                  default_tenant_t, excluded_t, values[0] << _FLAG_SHIFT, last_login, values[12])


def _from_listed(values: list[Any]) -> list[Any]:
    """A record in a layout before the compact one, in the compact one: flags as booleans, runtime and
    provider always spelled out; 12 items (before ``excluded``), 14 (before the last login and sealed
    id) or 16. What a layout lacked reads as unset (the flag off, the time ``NEVER``, no id)."""
    bits = values[6] | values[8] << 1 | values[10] << 2
    if len(values) < 14:
        return [bits, *values[:6], values[7], values[9], values[11], None, None, None]
    bits |= values[12] << 3
    if len(values) < 16:
        return [bits, *values[:6], values[7], values[9], values[11], values[13], None, None]
    return [bits, *values[:6], values[7], values[9], values[11], values[13], values[14], values[15]]


_unpackb = msgpack.unpackb
_intern = sys.intern


def _positions(meta: dict[str, bytes | str]) -> dict[str, int]:
    """``position:<topic>:<partition>`` fields of a subscription's meta hash: the next offset of each
    changes partition it has been counted from."""
    return _fields(meta, POSITION)


def _fields(meta: dict[str, bytes | str], prefix: str) -> dict[str, int]:
    """Offsets kept in a subscription's meta hash as ``<prefix><topic>:<partition>`` fields."""
    return {k[len(prefix) :]: int(v) for k, v in meta.items() if k.startswith(prefix)}
