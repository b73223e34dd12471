"""The worker's CPU per event in its two stages, without Kafka or Redis (never part of the test suite).

    .venv/bin/python -m tests.bench.stages --events 200000

``tests/bench/run.py`` measures the live pipeline, but on a machine shared with other work its events
per second say more about the CPU the worker got than about the code. This script times the
pipeline's own Python in CPU seconds of this process (``time.process_time``), on the synthetic events
of ``tests/bench/synthetic.py``, with the worker's collector thresholds:

1. ``ingest``: ``Ingest.handle`` over batches of source messages (decode, validate, normalize,
   ``encode_batch``), the changes captured instead of produced;
2. ``count``: ``Count.handle`` over those change messages with the memory store (``decode_batch``,
   the first-time fences, ``engine.apply``; no Redis commit);
3. the same run's baseline: ``orjson.loads`` of every source message.

Each figure is the best of ``--repeat`` runs over the same messages, each on fresh stages.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable

import orjson

from counters.memory_store import MemoryStore
from schemas.cloudevents import Headers
from schemas.events import SOURCE_TOPICS
from streams.kafka.messages import Inbound
from tests.bench import synthetic
from tests.fixtures.stages import stages

PREFIX = "bench"
START_MS = synthetic.START_US // 1000


class Captured:
    """Kafka's producer, for the benchmark: keeps the changes messages, delivers at once."""

    def __init__(self) -> None:
        self.changes: list[bytes] = []

    async def __call__(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None, /
                       ) -> Awaitable[None]:
        if topic.endswith(".changes"):
            self.changes.append(value)
        return _delivered()


async def _delivered() -> None:
    return None


def source_messages(events: int, subscriptions: int, users: int) -> list[Inbound]:
    documents = [*synthetic.configs(subscriptions, users), *synthetic.events(events, subscriptions, users)]
    offsets: dict[str, int] = {}
    messages = []
    for n, document in enumerate(documents):
        topic = f"{PREFIX}.{SOURCE_TOPICS[document['type']]}"
        offset = offsets[topic] = offsets.get(topic, -1) + 1
        messages.append(Inbound(topic, 0, offset, START_MS + n, document["subscription"].encode(),
                                orjson.dumps(document)))
    return messages


async def run_once(messages: list[Inbound], batch: int) -> tuple[float, float, int]:
    sent = Captured()
    stage = stages(MemoryStore(), sent, lambda name: f"{PREFIX}.{name}", clock=lambda: START_MS / 1000 + 86_400)
    started = time.process_time()
    for start in range(0, len(messages), batch):
        await stage.ingest.handle(messages[start : start + batch])
    ingest = time.process_time() - started
    changes = [Inbound(f"{PREFIX}.changes", 0, offset, 0, None, value) for offset, value in enumerate(sent.changes)]
    per_batch = max(1, len(changes) * batch // max(1, len(messages)))
    started = time.process_time()
    for start in range(0, len(changes), per_batch):
        await stage.count.handle(changes[start : start + per_batch])
    return ingest, time.process_time() - started, sum(len(v) for v in sent.changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000, help="source messages per ingest batch")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    messages = source_messages(args.events, args.subscriptions, args.users)
    gc.set_threshold(100_000, 50, 1000)  # as the worker (streams.worker.app.run_worker)
    baseline, ingest, count = float("inf"), float("inf"), float("inf")
    for _ in range(args.repeat):
        started = time.process_time()
        for message in messages:
            orjson.loads(message.value or b"")
        baseline = min(baseline, time.process_time() - started)
        gc.collect()
        ingested, counted, size = asyncio.run(run_once(messages, args.batch))
        ingest, count = min(ingest, ingested), min(count, counted)
        gc.collect()
    n = len(messages)
    print(f"{n:,} source messages, {size / n:.0f} bytes of changes topic per event; CPU µs per event, best of {args.repeat}")
    print(f"{'orjson.loads (baseline)':<28}{baseline / n * 1e6:>8.2f}")
    print(f"{'ingest':<28}{ingest / n * 1e6:>8.2f}")
    print(f"{'count (memory store)':<28}{count / n * 1e6:>8.2f}")
    print(f"{'both stages':<28}{(ingest + count) / n * 1e6:>8.2f}   ({n / (ingest + count):,.0f} events per CPU second)")


if __name__ == "__main__":
    main()
