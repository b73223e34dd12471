"""End-to-end benchmark of the live pipeline on the local Kafka and Redis (never part of the test suite).

    .venv/bin/python tests/bench/run.py --events 200000 --out artifacts/bench/200k.json --plot artifacts/bench/200k.png

It starts everything it needs itself: ``deploy/local/services up``, then one ``endusers worker`` process with
an isolated topic prefix, consumer group, web port and Redis database (flushed first), and stops it at the
end. In one run, on the same broker and Redis, it measures:

1. load: N synthetic events (``tests/bench/synthetic.py``, configs first) written to a JSONL file and
   pre-produced to the source topics before the worker starts, so throughput is measured on a backlog;
2. throughput: events per second of one worker from ``/readyz`` = 200 until every change is committed in
   Redis (positions in ``endusers:{sub}:meta`` at the ends of ``<prefix>.changes`` and no consumer-group lag
   on the source topics), next to a raw baseline (a plain aiokafka consumer decoding each message with orjson);
3. latency at a paced offered load (default 2,000 logins/s for 15 s, each a new user): produce -> counts
   visible in Redis, and produce -> capacity-change event on ``<prefix>.capacity``; ``--background-load N``
   runs N busy processes (``tests/bench/background.py``) during this phase only, as a shared node behaves;
4. Redis memory per tracked record (``used_memory`` delta / records stored);
5. a domain reconfiguration of the biggest subscription: produce -> new counts visible in Redis.

``--profile FILE`` samples the worker with py-spy (``--format raw``, collapsed stacks) during the backlog phase
and adds the hottest functions to the JSON. Profiling costs CPU, so keep headline figures from unprofiled runs.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import importlib.metadata
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench import synthetic  # noqa: E402
from tests.bench.background import busy_processes  # noqa: E402

SOURCE_TOPICS = {"login": "logins", "profile": "profiles", "visit": "visits", "config": "config"}
"""As ``streams.settings.SOURCE_TOPICS`` (``route()`` in ``streams/kafka/publish.py``)."""
PARTITIONS = 4
REDIS_DB = 13
LATENCY_SUBSCRIPTION = "bench-latency"
TAKEOVER_SUBSCRIPTION = "bench-takeover"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the environment ----------------------------------------------------------------------------------


def services_up() -> tuple[str, str, str]:
    """``deploy/local/services up``; returns (kafka bootstrap, redis base url, ``status`` text)."""
    up = subprocess.run([str(ROOT / "deploy/local/services"), "up"], capture_output=True, text=True)
    if up.returncode != 0:
        sys.exit(f"deploy/local/services up failed:\n{up.stderr}")
    env = dict(re.findall(r"export (\w+)=['\"]?([^'\"\s]+)", up.stdout))
    kafka = env.get("ENDUSERS_KAFKA", "kafka://127.0.0.1:9092").split("://", 1)[-1].replace(";", ",")
    redis = env.get("ENDUSERS_REDIS", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    status = subprocess.run([str(ROOT / "deploy/local/services"), "status"], capture_output=True, text=True)
    return kafka, redis, status.stderr + status.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_bytes": memory,
            "memory_gib": round(memory / 2**30, 1), "kernel": platform.release()}


def versions(status: str, redis_info: dict[str, Any]) -> dict[str, Any]:
    def dist(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    kafka = re.search(r"Kafka (\d+\.\d+\.\d+)", status)
    return {"python": platform.python_version(), "faust": dist("faust-streaming"), "aiokafka": dist("aiokafka"),
            "redis_py": dist("redis"), "orjson": dist("orjson"), "kafka": kafka.group(1) if kafka else None,
            "redis_server": redis_info.get("redis_version")}


def cpu_seconds(pid: int | None) -> float | None:
    """user + system CPU seconds of a process (from /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of a process (VmRSS), or None where /proc does not say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return float(sum(fields[:8]) - idle), float(sum(fields[:8]))


SESSION_TIMEOUT = os.environ.get("ENDUSERS_SESSION_TIMEOUT", "10")
"""The workers' Kafka session timeout (the worker's default unless set): a takeover after a kill waits
for it before Kafka gives the dead worker's partitions away."""


class CpuMeter:
    """CPU used during a phase, in cores: by the worker, Kafka, Redis, this bench and everything else."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {**pids, "bench": os.getpid()}
        self.start = time.perf_counter()
        self.before = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.system = system_cpu()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.start
        after = {k: cpu_seconds(p) for k, p in self.pids.items()}
        busy0, total0 = self.system
        busy1, total1 = system_cpu()
        cores = os.cpu_count() or 1
        used = {k: round((after[k] - v) / wall, 2) if v is not None and after[k] is not None else None
                for k, v in self.before.items()}
        used["machine_busy"] = round(cores * (busy1 - busy0) / max(1.0, total1 - total0), 2)
        used["others"] = round(used["machine_busy"] - sum(v for k, v in used.items()
                                                         if k != "machine_busy" and v is not None), 2)
        used["cores"] = cores
        used["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
        return used


def kafka_pid() -> int | None:
    path = Path(os.environ.get("ENDUSERS_DATA", Path.home() / ".local/share/endusers")) / "kafka/kafka.pid"
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def takeover_size(records: int) -> str:
    """The size in a takeover key (``takeover_s_10m``), exact: a rounded name would claim a size not run."""
    if records % 1_000_000 == 0:
        return f"{records // 1_000_000}m"
    return f"{records // 1000}k" if records % 1000 == 0 else str(records)


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 2), "n": len(ordered)}


# --- the deployment -----------------------------------------------------------------------------------


class Deployment:
    def __init__(self, kafka: str, redis_base: str, workdir: Path, batch_size: int | None) -> None:
        name = uuid.uuid4().hex[:8]
        self.kafka = kafka
        self.redis_url = f"{redis_base}/{REDIS_DB}"
        self.prefix = f"bench{name}"
        self.app_id = f"endusers-bench{name}"
        self.workdir = workdir
        self.batch_size = batch_size
        self.process: subprocess.Popen[bytes] | None = None
        self.gc_log: Path | None = None
        self.port = 0
        self.others: list[tuple[subprocess.Popen[bytes], int]] = []
        """Workers beyond the first (``--workers``), with their web ports."""

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    @property
    def sources(self) -> list[str]:
        return [self.topic(t) for t in SOURCE_TOPICS.values()]

    def env(self, port: int | None = None) -> dict[str, str]:
        port = self.port if port is None else port
        env = {**os.environ, "ENDUSERS_KAFKA": f"kafka://{self.kafka}", "ENDUSERS_REDIS": self.redis_url,
               "ENDUSERS_TOPIC_PREFIX": self.prefix, "ENDUSERS_APP_ID": self.app_id,
               "ENDUSERS_PARTITIONS": str(PARTITIONS), "ENDUSERS_WEB_PORT": str(port),
               "ENDUSERS_DATA_DIR": str(self.workdir / "faust-data"), "ENDUSERS_SESSION_TIMEOUT": SESSION_TIMEOUT,
               "ENDUSERS_ENV": "development"}
        if self.batch_size:
            env["ENDUSERS_BATCH_SIZE"] = str(self.batch_size)
        return env

    def start_worker(self, instance_id: str = "") -> subprocess.Popen[bytes]:
        """The worker measured; with ``instance_id`` a static member of its groups (ENDUSERS_INSTANCE_ID,
        as the Helm chart runs each pod under its name)."""
        self.port = free_port()
        self.log = self.workdir / f"worker-{self.port}.log"
        command = [sys.executable, "-m", "streams", "worker", "-l", "warning"]
        env = self.env()
        if instance_id:
            env["ENDUSERS_INSTANCE_ID"] = instance_id
        if self.gc_log:  # the same worker, with every gc pause logged (tests/bench/gcwatch.py)
            command[1:3] = [str(ROOT / "tests/bench/gcwatch.py")]
            env["BENCH_GC_LOG"] = str(self.gc_log)
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log.open("wb"),
                                        stderr=subprocess.STDOUT)
        return self.process

    def start_other_worker(self) -> tuple[subprocess.Popen[bytes], int]:
        """One more worker in the same consumer groups (the scaling measurement)."""
        port = free_port()
        log = self.workdir / f"worker-{port}.log"
        process = subprocess.Popen([sys.executable, "-m", "streams", "worker", "-l", "warning"], cwd=ROOT,
                                   env=self.env(port), stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.others.append((process, port))
        return process, port

    def stop_worker(self) -> None:
        for process in [self.process, *(p for p, _ in self.others)]:
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return ""


# --- the benchmark ------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, Any] = {}
        self.rss_ready: int | None = None
        self.busy: list[subprocess.Popen[bytes]] = []

    async def run(self) -> dict[str, Any]:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient
        from redis.asyncio import Redis

        args = self.args
        started = time.perf_counter()
        kafka, redis_base, status = services_up()
        workdir = Path(args.workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        self.d = d = Deployment(kafka, redis_base, workdir, args.batch_size)
        d.gc_log = Path(args.gc_log).resolve() if args.gc_log else None
        self.redis = Redis.from_url(d.redis_url)
        await self.redis.flushdb()
        info = await self.redis.info()
        self.admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await self.admin.start()
        self.offsets = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
        await self.offsets.start()
        self.results.update({
            "parameters": {"events": args.events, "subscriptions": args.subscriptions, "users": args.users,
                           "seed": args.seed, "partitions": PARTITIONS, "batch_size": args.batch_size or 2000,
                           "latency_rate": args.rate, "latency_seconds": args.seconds, "redis_db": REDIS_DB,
                           "topic_prefix": d.prefix, "app_id": d.app_id, "profile": bool(args.profile),
                           "workers": args.workers, "background_load": args.background_load},
            "machine": machine(),
            "versions": versions(status, info),
        })
        log(f"prefix {d.prefix}, group {d.app_id}, Redis {d.redis_url}, work dir {workdir}")
        try:
            await self.create_topics()
            memory_before = (await self.redis.info("memory"))["used_memory"]
            await self.load()
            await self.baseline()
            await self.backlog()
            with busy_processes(args.background_load) as self.busy:  # the latency phase only; always stopped
                await self.latency()
            await self.reconfigure()
            await self.memory(memory_before)
            self.heap()
            self.engine()
            if args.takeover_records:
                await self.takeover(args.takeover_records)
        finally:
            d.stop_worker()
            await self.offsets.stop()
            if not args.keep:
                try:
                    await self.admin.delete_topics([d.topic(t) for t in (*SOURCE_TOPICS.values(), "changes",
                                                                          "capacity", "counts", "deadletter", "statements")])
                except Exception as exc:  # best effort
                    log(f"could not delete the topics: {exc}")
                try:  # best effort as well: flushing millions of records can outlast the client's timeout
                    await self.redis.flushdb()
                except Exception as exc:
                    log(f"could not flush Redis database {REDIS_DB}: {exc}")
            await self.admin.close()
            await self.redis.aclose()
        if d.gc_log and d.gc_log.exists():
            pauses = [(float(line.split()[0]), line.split()[1], float(line.split()[2][:-2]))
                      for line in d.gc_log.read_text().splitlines() if line.strip()]
            gen2 = [p for _, g, p in pauses if g == "gen2"]
            self.results["worker_gc"] = {"log": str(d.gc_log), "gen2_collections": len(gen2),
                                         "gen2_pause_ms": percentiles(gen2),
                                         "gen2_pause_total_ms": round(sum(gen2), 1)}
        self.results["run_seconds"] = round(time.perf_counter() - started, 1)
        return self.results

    async def create_topics(self) -> None:
        from aiokafka.admin import NewTopic

        names = [self.d.topic(t) for t in (*SOURCE_TOPICS.values(), "changes", "capacity", "counts", "deadletter",
                                               "statements")]
        await self.admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:  # until every partition has a leader
            described = await self.admin.describe_topics(names)
            if all(t.get("error_code", 0) == 0 and len(t.get("partitions") or []) == PARTITIONS
                   and all(p.get("leader", -1) >= 0 for p in t["partitions"]) for t in described):
                break
            await asyncio.sleep(0.2)

    async def end_offsets(self, topics: list[str]) -> dict[Any, int]:
        from aiokafka import TopicPartition

        return await self.offsets.end_offsets([TopicPartition(t, p) for t in topics for p in range(PARTITIONS)])

    # 1. load ------------------------------------------------------------------------------------------

    async def load(self) -> None:
        from aiokafka import AIOKafkaProducer

        args, d = self.args, self.d
        t0 = time.perf_counter()
        path = d.workdir / f"events-{args.events}.jsonl"
        lines = [orjson.dumps(e) for e in synthetic.configs(args.subscriptions, args.users)]
        lines += [orjson.dumps(e) for e in synthetic.events(args.events, args.subscriptions, args.users,
                                                            seed=args.seed)]
        path.write_bytes(b"\n".join(lines) + b"\n")
        generated = time.perf_counter() - t0
        log(f"generated {len(lines)} events into {path} in {generated:.1f}s; producing")
        producer = AIOKafkaProducer(bootstrap_servers=d.kafka, linger_ms=20, max_batch_size=1024 * 1024,
                                    acks="all", enable_idempotence=True)
        await producer.start()
        t1 = time.perf_counter()
        counts: collections.Counter[str] = collections.Counter()
        timestamp = int(time.time() * 1000) - len(lines) - 1000  # strictly increasing, ending about now
        try:
            pending = []
            for line in lines:
                document = orjson.loads(line)  # route() of streams/kafka/publish.py: topic by type, key by subscription
                topic = d.topic(SOURCE_TOPICS[document["type"]])
                subscription = document.get("subscription")
                key = subscription.encode() if isinstance(subscription, str) else None
                timestamp += 1
                pending.append(await producer.send(topic, line, key=key, timestamp_ms=timestamp))
                counts[topic] += 1
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        produced = time.perf_counter() - t1
        self.total = len(lines)
        self.results["load"] = {"events": args.events, "configs": args.subscriptions, "messages": len(lines),
                                "jsonl": str(path), "jsonl_bytes": path.stat().st_size, "per_topic": dict(counts),
                                "generate_s": round(generated, 2), "produce_s": round(produced, 2),
                                "produce_events_per_s": round(len(lines) / produced)}
        log(f"produced {len(lines)} messages in {produced:.1f}s ({len(lines) / produced:,.0f}/s)")
        del lines
        gc.collect()
        gc.freeze()  # keep the bench's own collections short during the timed phases

    # 2. raw baseline and backlog throughput ---------------------------------------------------------

    async def baseline(self) -> None:
        from aiokafka import AIOKafkaConsumer

        d = self.d
        consumer = AIOKafkaConsumer(*d.sources, bootstrap_servers=d.kafka, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
        await consumer.start()
        try:
            read, t0 = 0, time.perf_counter()
            while read < self.total:
                batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
                for records in batch.values():
                    for record in records:
                        orjson.loads(record.value)
                    read += len(records)
                if time.perf_counter() - t0 > 600:
                    raise RuntimeError(f"baseline read only {read} of {self.total}")
            elapsed = time.perf_counter() - t0
        finally:
            await consumer.stop()
        self.results["baseline_events_per_s"] = round(read / elapsed)
        self.results["baseline"] = {"messages": read, "seconds": round(elapsed, 3)}
        log(f"baseline: {read} messages in {elapsed:.2f}s ({read / elapsed:,.0f}/s)")

    async def positions(self, subscriptions: list[str]) -> tuple[tuple[int, ...], ...]:
        """Per subscription, the committed position of each changes partition (0: none yet)."""
        fields = [f"position:{self.d.topic('changes')}:{p}" for p in range(PARTITIONS)]
        pipe = self.redis.pipeline(transaction=False)
        for subscription in subscriptions:
            pipe.hmget("endusers:{%s}:meta" % subscription, fields)
        rows = await pipe.execute()
        return tuple(tuple(int(v) if v is not None else 0 for v in row) for row in rows)

    async def source_lag(self) -> int:
        committed = await self.admin.list_consumer_group_offsets(f"{self.d.app_id}-ingest")
        lag = 0
        for tp, end in (await self.end_offsets(self.d.sources)).items():
            meta = committed.get(tp)
            lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag

    async def wait_ready(self, process: subprocess.Popen[bytes], timeout: float = 120, port: int | None = None) -> float:
        import httpx

        deadline = time.perf_counter() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.perf_counter() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"worker exited with {process.returncode}:\n{self.d.log_tail()}")
                try:
                    if (await client.get(f"http://127.0.0.1:{port or self.d.port}/readyz")).status_code == 200:
                        return time.perf_counter()
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.02)
        raise RuntimeError(f"worker not ready within {timeout}s:\n{self.d.log_tail()}")

    async def backlog(self) -> None:
        args, d = self.args, self.d
        subscriptions = [f"client-{s}" for s in range(args.subscriptions)]
        spawned = time.perf_counter()
        process = d.start_worker()
        others = [d.start_other_worker() for _ in range(args.workers - 1)]
        log(f"worker pid {process.pid} on port {d.port} (log {d.log})"
            + "".join(f", worker pid {p.pid} on port {port}" for p, port in others))
        for other, port in others:
            await self.wait_ready(other, port=port)
        ready = await self.wait_ready(process)
        log(f"{args.workers} worker(s) ready after {ready - spawned:.1f}s; counting the backlog")
        self.rss_ready = rss_bytes(process.pid) if args.workers == 1 else None
        profiler = self.start_profiler(process.pid, args.profile) if args.profile else None
        redis_pid = int((await self.redis.info("server"))["process_id"])
        meter = CpuMeter({"worker": process.pid, **{f"worker-{n}": p.pid for n, (p, _) in enumerate(others, 2)},
                          "kafka": kafka_pid(), "redis": redis_pid})
        snapshots: list[tuple[float, tuple[tuple[int, ...], ...]]] = []
        first_commit = None
        last_check = 0.0
        deadline = ready + args.timeout
        while True:
            now = time.perf_counter()
            if now > deadline:
                raise RuntimeError(f"backlog not counted within {args.timeout}s:\n{d.log_tail()}")
            for worker in (process, *(p for p, _ in others)):
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited with {worker.returncode}:\n{d.log_tail()}")
            snapshot = await self.positions(subscriptions)
            stamp = time.perf_counter()
            if not snapshots or snapshots[-1][1] != snapshot:
                snapshots.append((stamp, snapshot))
                if first_commit is None and any(any(row) for row in snapshot):
                    first_commit = stamp
            if stamp - last_check >= 0.25:
                last_check = stamp
                ends = await self.end_offsets([d.topic("changes")])
                by_partition = [max(row[p] for row in snapshot) for p in range(PARTITIONS)]
                at_end = all(by_partition[tp.partition] == end for tp, end in ends.items())
                if at_end and sum(ends.values()) > 0 and await self.source_lag() == 0:
                    # settle: a batch commits its subscriptions one after the other, so wait and re-read
                    await asyncio.sleep(0.5)
                    final = await self.positions(subscriptions)
                    if final != snapshot:
                        continue
                    ends_after = await self.end_offsets([d.topic("changes")])
                    if ends_after == ends:
                        break
            await asyncio.sleep(0.01)
        done = next(t for t, s in snapshots if s == final)  # the first time every position was final
        elapsed = done - ready
        if profiler is not None:
            self.results["profile"] = self.stop_profiler(profiler, args.profile)
        cpu = meter.stop()
        changes = sum(ends.values())
        dead = sum((await self.end_offsets([d.topic("deadletter")])).values())
        self.results["pipeline_events_per_s"] = round(self.total / elapsed)
        self.results["ratio"] = round(self.results["pipeline_events_per_s"] / self.results["baseline_events_per_s"], 3)
        workers = sum(cores or 0 for name, cores in cpu.items() if name.startswith("worker"))
        # on a shared machine events/s says how much CPU the worker got; this says what an event costs it
        self.results["worker_cpu_us_per_event"] = round(workers * elapsed / self.total * 1e6, 2)
        self.results["backlog"] = {
            "messages": self.total, "changes": changes, "dead_letters": dead,
            "worker_start_to_ready_s": round(ready - spawned, 2),
            "ready_to_first_commit_s": round((first_commit or done) - ready, 2),
            "ready_to_counted_s": round(elapsed, 3),
            "cpu_cores_used": cpu,
        }
        log(f"backlog: {self.total} events counted in {elapsed:.2f}s ({self.total / elapsed:,.0f}/s); "
            f"CPU cores {cpu}")

    # profiling --------------------------------------------------------------------------------------

    def start_profiler(self, pid: int, path: str) -> subprocess.Popen[bytes]:
        spy = Path(sys.executable).with_name("py-spy")
        out = Path(path).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        log(f"py-spy recording pid {pid} into {out}")
        return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--rate", str(self.args.profile_rate),
                                 "--format", "raw", "-o", str(out),
                                 # native stacks need the process stopped while sampled
                                 *(["--native", "--threads"] if self.args.profile_native else ["--nonblocking"])],
                                stdout=subprocess.DEVNULL, stderr=(self.d.workdir / "py-spy.log").open("ab"))

    def stop_profiler(self, profiler: subprocess.Popen[bytes], path: str) -> dict[str, Any]:
        profiler.send_signal(signal.SIGINT)
        try:
            profiler.wait(timeout=60)
        except subprocess.TimeoutExpired:
            profiler.kill()
        try:
            return summarize_profile(Path(path).resolve(), self.args.profile_top)
        except OSError as exc:
            return {"error": str(exc)}

    # 3. latency at a paced load ---------------------------------------------------------------------

    async def latency_sender(self, producer: Any, sub: str) -> Any:
        """How the latency phase sends: plainly, or (``--watermarks``) as ``endusers publish`` does, with
        arrival stamps and watermarks. Only the latency subscription's partition gets events: every
        other partition advances by the producer's beats alone (the idle-partition case)."""
        from counters import ArrivalClock
        from streams.kafka.messages import ARRIVAL_HEADER
        from streams.kafka.watermarks import WatermarkWriter

        key = sub.encode()
        clock = ArrivalClock()
        writer = WatermarkWriter(producer, clock, self.args.watermark_interval, "bench") if self.args.watermarks else None
        if writer is not None:
            await writer.open([self.d.topic(t) for t in ("logins", "profiles", "visits", "config")])

        async def send(topic: str, value: bytes) -> Any:
            if writer is None:
                return await producer.send(topic, value, key=key)
            return await writer.send(topic, key, lambda: (value, [(ARRIVAL_HEADER, str(clock()).encode())]))

        async def close() -> None:
            if writer is not None:
                await writer.close()

        send.close = close  # type: ignore[attr-defined]
        return send

    async def latency(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        args, d = self.args, self.d
        sub = LATENCY_SUBSCRIPTION
        total = int(args.rate * args.seconds)
        capacity = max(10, total // 2 // 10)  # each class crosses the 40 thresholds 25%, 50%, .. 1000%
        producer = AIOKafkaProducer(bootstrap_servers=d.kafka, linger_ms=0, acks=1)
        await producer.start()
        send = await self.latency_sender(producer, sub)
        capacity_consumer = AIOKafkaConsumer(bootstrap_servers=d.kafka, group_id=None, enable_auto_commit=False)
        await capacity_consumer.start()
        tps = [TopicPartition(d.topic("capacity"), p) for p in range(PARTITIONS)]
        capacity_consumer.assign(tps)
        await capacity_consumer.seek_to_end(*tps)
        for tp in tps:
            await capacity_consumer.position(tp)
        counts_key = "endusers:{%s}:counts" % sub
        try:
            config = {"type": "config", "id": "cfg-latency", "subscription": sub, "platform": "o11",
                      "domains": ["lat.example"], "capacity": {"internal": capacity, "external": capacity},
                      "thresholds": list(range(25, 1001, 25)), "hysteresis": 1,
                      "runtimes": {"prod-eu": {"version": "11.14.0"}}}
            await (await send(d.topic("config"), orjson.dumps(config)))
            deadline = time.perf_counter() + 30
            while await self.redis.get(counts_key) is None:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"latency subscription config not committed:\n{d.log_tail()}")
                await asyncio.sleep(0.01)
            base = orjson.loads(await self.redis.get(counts_key))["records"]
            produced: list[float] = []
            seen: list[float] = []
            capacity_seen: dict[str, tuple[float, str]] = {}
            finished = asyncio.Event()

            async def consume_capacity() -> None:
                while not finished.is_set():
                    batch = await capacity_consumer.getmany(timeout_ms=100)
                    now = time.perf_counter()
                    for records in batch.values():
                        for record in records:
                            event = orjson.loads(record.value)
                            if event.get("subscription") == sub and event["id"] not in capacity_seen:
                                capacity_seen[event["id"]] = (now, event.get("trigger") or "")

            async def watch() -> None:
                visible = 0
                while visible < total:
                    raw = await self.redis.get(counts_key)
                    now = time.perf_counter()
                    count = orjson.loads(raw)["records"] - base
                    while visible < min(count, len(produced)):
                        seen.append(now)
                        visible += 1
                    if len(produced) == total and now - produced[-1] > 60:
                        raise RuntimeError(f"only {visible} of {total} latency events became visible")
                    await asyncio.sleep(args.poll_ms / 1000)

            profiler = (self.start_profiler(self.d.process.pid, args.profile_latency)  # type: ignore[union-attr]
                        if args.profile_latency else None)
            meter = CpuMeter({"worker": self.d.process.pid, "kafka": kafka_pid(),  # type: ignore[union-attr]
                              "redis": int((await self.redis.info("server"))["process_id"]),
                              **{f"busy{i}": p.pid for i, p in enumerate(self.busy)}})
            consumer_task = asyncio.create_task(consume_capacity())
            watcher = asyncio.create_task(watch())
            deliveries = []
            t0 = time.perf_counter()
            sent = 0
            while sent < total:
                due = min(total, int((time.perf_counter() - t0) * args.rate) + 1)
                while sent < due:
                    email = f"lat{sent}@lat.example" if sent % 2 == 0 else f"lat{sent}@ext-lat.example"
                    event = {"type": "login", "id": f"lat-{sent}", "subscription": sub, "runtime": "prod-eu",
                             "provider": "Users", "user_id": f"lat-{sent}", "username": f"lat{sent}", "email": email}
                    produced.append(time.perf_counter())
                    deliveries.append(await send(d.topic("logins"), orjson.dumps(event)))
                    sent += 1
                await asyncio.sleep(0.002)
            offered = total / (time.perf_counter() - t0)
            await asyncio.gather(*deliveries)
            await watcher
            cpu = meter.stop()
            if profiler is not None:
                self.results["profile_latency"] = self.stop_profiler(profiler, args.profile_latency)
            await asyncio.sleep(1.0)  # the last capacity events
            finished.set()
            await consumer_task
        finally:
            await send.close()  # type: ignore[attr-defined]
            await producer.stop()
            await capacity_consumer.stop()
        latencies = [(s - p) * 1000 for s, p in zip(seen, produced)]
        index = {f"lat-{i}": t for i, t in enumerate(produced)}
        capacity_latencies = [(at - index[trigger]) * 1000 for at, trigger in capacity_seen.values() if trigger in index]
        pct = percentiles(latencies)
        self.results["latency_ms"] = {k: pct[k] for k in ("p50", "p95", "p99")}
        self.results["capacity_latency_ms"] = {k: v for k, v in percentiles(capacity_latencies).items()
                                               if k in ("p50", "p95", "p99")}
        self.results["latency"] = {"offered_events_per_s": round(offered), "events": total, "poll_ms": args.poll_ms,
                                   "visibility": pct, "capacity": percentiles(capacity_latencies),
                                   "capacity_per_class": capacity, "capacity_events": len(capacity_seen),
                                   "cpu_cores_used": cpu, "background_load": len(self.busy)}
        buckets: dict[int, float] = {}
        for produced_at, latency in zip(produced, latencies):  # the worst latency per 100 ms of sending
            bucket = int((produced_at - t0) * 10)
            buckets[bucket] = max(buckets.get(bucket, 0.0), latency)
        self.results["latency"]["series_max_ms_per_100ms"] = [[b / 10, round(v, 1)] for b, v in sorted(buckets.items())]
        log(f"latency at {offered:,.0f}/s: {pct}; capacity events {len(capacity_seen)}: "
            f"{self.results['capacity_latency_ms']}; CPU cores {cpu}")

    # 5. reconfiguration -----------------------------------------------------------------------------

    async def reconfigure(self) -> None:
        from aiokafka import AIOKafkaProducer

        d = self.d
        sizes = {}
        for s in range(self.args.subscriptions):
            sizes[f"client-{s}"] = await self.redis.hlen("endusers:{client-%d}:records" % s)
        sub = max(sizes, key=lambda s: sizes[s])
        meta, counts_key = "endusers:{%s}:meta" % sub, "endusers:{%s}:counts" % sub
        settings = orjson.loads(await self.redis.hget(meta, "settings"))
        before = orjson.loads(await self.redis.get(counts_key))
        domains = [*settings["domains"], "ext0.example", "ext1.example", "ext2.example"]
        producer = AIOKafkaProducer(bootstrap_servers=d.kafka, linger_ms=0, acks=1)
        await producer.start()
        try:
            await producer.send_and_wait(d.topic("counts"), b"{}", key=b"bench-warm-up")  # connection, metadata
            event = {"type": "config", "id": "cfg-reconfigure", "subscription": sub, "domains": domains}
            t0 = time.perf_counter()
            await producer.send(d.topic("config"), orjson.dumps(event), key=sub.encode())
            deadline = t0 + 60
            while True:
                pipe = self.redis.pipeline(transaction=False)
                pipe.hget(meta, "settings")
                pipe.get(counts_key)
                raw_settings, raw_counts = await pipe.execute()
                now = time.perf_counter()
                if orjson.loads(raw_settings)["domains"] == domains:
                    break
                if now > deadline:
                    raise RuntimeError(f"reconfiguration not visible within 60s:\n{d.log_tail()}")
                await asyncio.sleep(0.002)
        finally:
            await producer.stop()
        after = orjson.loads(raw_counts)
        self.results["reconfigure_ms"] = round((now - t0) * 1000, 1)
        self.results["reconfigure"] = {"subscription": sub, "records": sizes[sub], "domains": domains,
                                       "before": {k: before[k] for k in ("internal", "external")},
                                       "after": {k: after[k] for k in ("internal", "external")}}
        log(f"reconfigure {sub} ({sizes[sub]} records): {self.results['reconfigure_ms']} ms, "
            f"{self.results['reconfigure']['before']} -> {self.results['reconfigure']['after']}")

    # 4. memory --------------------------------------------------------------------------------------

    async def takeover(self, records: int) -> None:
        """``takeover_s_<N>``: the worker owning a subscription of N records is killed (SIGKILL) and
        restarted at once under the same ``ENDUSERS_INSTANCE_ID`` (what Kubernetes does to a crashed pod
        of the Helm chart, whose workers are static members named after their pods); then a login of a
        new user is produced. The figure is the time from the kill until that login is visible in Redis:
        the restart, the rejoin, loading N records, the count. The key names the N that ran
        (``takeover_s_1m`` only for 1,000,000).

        ``takeover_gone_s_<N>``: the same when the killed worker does not come back (a dynamic member, or
        a lost node): a new worker takes over once Kafka's session timeout has expired the dead one."""
        from aiokafka import AIOKafkaProducer

        d, sub = self.d, TAKEOVER_SUBSCRIPTION
        counts_key = "endusers:{%s}:counts" % sub
        producer = AIOKafkaProducer(bootstrap_servers=d.kafka, linger_ms=20, acks=1, max_batch_size=1 << 20)
        await producer.start()

        def login(user: int) -> bytes:
            return orjson.dumps({"type": "login", "subscription": sub, "user_id": str(user),
                                 "email": f"user{user}@takeover.example"})

        async def visible(count: int, timeout: float) -> float:
            deadline = time.perf_counter() + timeout
            while True:
                raw = await self.redis.get(counts_key)
                if raw is not None and orjson.loads(raw)["records"] >= count:
                    return time.perf_counter()
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"takeover: {count} records not visible within {timeout}s:\n{d.log_tail()}")
                await asyncio.sleep(0.005)

        async def kill_and_replace(instance_id: str, user: int) -> dict[str, Any]:
            assert d.process is not None
            killed = time.perf_counter()
            d.process.send_signal(signal.SIGKILL)
            d.process.wait(timeout=10)
            process = d.start_worker(instance_id)
            assignment = asyncio.ensure_future(self.assigned(process))
            await (await producer.send(d.topic("logins"), login(user), key=sub.encode()))
            seen = await visible(user + 1, timeout=600)
            worker_cpu, worker_rss = cpu_seconds(process.pid), rss_bytes(process.pid)
            ready = await self.wait_ready(process, timeout=600)
            assigned = await assignment
            return {"kill_to_visible_s": round(seen - killed, 2), "kill_to_assigned_s": round(assigned - killed, 2),
                    "assigned_to_visible_s": round(seen - assigned, 2),
                    "new_worker_cpu_s_until_visible": worker_cpu, "new_worker_rss_bytes_when_visible": worker_rss,
                    "loadavg": Path("/proc/loadavg").read_text().split()[:3],
                    "kill_to_ready_s": round(ready - killed, 2)}

        try:
            memory_before = (await self.redis.info("memory"))["used_memory"]
            started = time.perf_counter()
            for first in range(0, records, 10_000):
                sent = [await producer.send(d.topic("logins"), login(u), key=sub.encode())
                        for u in range(first, min(records, first + 10_000))]
                await asyncio.gather(*sent)
            await visible(records, timeout=max(120.0, records / 1000))
            loaded = time.perf_counter() - started
            redis_bytes = (await self.redis.info("memory"))["used_memory"] - memory_before
            assert d.process is not None
            owner_rss = rss_bytes(d.process.pid)
            log(f"takeover: Redis {redis_bytes / records:.1f} B/record, owner RSS {owner_rss} bytes")
            log(f"takeover: {records} records of {sub} counted in {loaded:.1f}s; killing worker {d.process.pid}, "
                f"a dynamic member: a new one takes over after the session timeout")
            gone = await kill_and_replace("bench-takeover-0", records)
            log(f"takeover: killing worker {d.process.pid}, a static member, and restarting it under its name")
            restarted = await kill_and_replace("bench-takeover-0", records + 1)
        finally:
            await producer.stop()
        size = takeover_size(records)
        self.results[f"takeover_s_{size}"] = restarted["kill_to_visible_s"]
        self.results[f"takeover_gone_s_{size}"] = gone["kill_to_visible_s"]
        self.results["takeover"] = {"records": records, "load_seconds": round(loaded, 1),
                                    "redis_bytes_per_record": round(redis_bytes / records, 1),
                                    "owner_rss_bytes_when_loaded": owner_rss,
                                    "session_timeout_s": float(SESSION_TIMEOUT),
                                    **restarted, "gone": gone}
        for what, figures in (("a new worker, the killed one gone", gone), ("restarted under its name", restarted)):
            log(f"takeover ({what}): a login visible {figures['kill_to_visible_s']}s after the kill ({records} "
                f"records), {figures['assigned_to_visible_s']}s after the worker got the partitions")

    async def assigned(self, process: subprocess.Popen[bytes], timeout: float = 600) -> float:
        """When a new worker's ``/readyz`` first says it holds its assignment: from then on, the time
        until counts are visible is the new owner's own (loading and rebuilding the state), the time
        before it is Kafka's (the dead member's session timeout and the rebalance)."""
        import httpx

        deadline = time.perf_counter() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.perf_counter() < deadline and process.poll() is None:
                try:
                    body = (await client.get(f"http://127.0.0.1:{self.d.port}/readyz")).json()
                    if body.get("assignment") is True:
                        return time.perf_counter()
                except (httpx.HTTPError, ValueError):
                    pass
                await asyncio.sleep(0.02)
        raise RuntimeError(f"worker got no assignment within {timeout}s:\n{self.d.log_tail()}")

    def heap(self) -> None:
        """``heap_bytes_per_record``: Python heap bytes per record of the engine states that the run's own
        events build (tracemalloc, in this process: the worker's heap also holds Kafka buffers and garbage,
        which its RSS growth shows). The same measure as ``tests/bench/engine_replay.py``, on these events."""
        from tests.bench.engine_replay import states_heap_bytes

        path = self.d.workdir / f"events-{self.args.events}.jsonl"
        started = time.perf_counter()
        heap, records = states_heap_bytes(path.read_bytes().splitlines())
        self.results["heap_bytes_per_record"] = round(heap / records, 1) if records else None
        self.results["heap"] = {"bytes": heap, "records": records, "seconds": round(time.perf_counter() - started, 1),
                                "method": "tracemalloc of the engine states built from the run's events"}
        log(f"heap: {heap} bytes for {records} records ({self.results['heap_bytes_per_record']} B/record)")

    def engine(self) -> None:
        """``engine_replay_events_per_s``: the run's events through ``endusers replay``'s path in this
        process (decode, validate, normalize, apply); ``engine_apply_events_per_s``: ``engine.apply``
        alone on the normalized changes; ``repeated_login_us``: the common case alone (a repeated,
        unchanged login of a known person). The same measures as ``tests/bench/engine_replay.py``."""
        from tests.bench.engine_replay import bench_engine, bench_replay

        lines = (self.d.workdir / f"events-{self.args.events}.jsonl").read_bytes().splitlines()
        replay_s, _ = bench_replay(lines)
        apply_s, repeats_s, repeats = bench_engine(lines)
        self.results["engine_replay_events_per_s"] = round(len(lines) / replay_s)
        self.results["engine_apply_events_per_s"] = round(len(lines) / apply_s)
        self.results["repeated_login_us"] = round(repeats_s / repeats * 1e6, 2) if repeats else None
        log(f"engine: replay path {self.results['engine_replay_events_per_s']} events/s, apply alone "
            f"{self.results['engine_apply_events_per_s']} events/s, repeated login {self.results['repeated_login_us']} µs")

    async def memory(self, before: int) -> None:
        info = await self.redis.info("memory")
        records = 0
        records_hash = 0
        async for key in self.redis.scan_iter(match="endusers:{*}:records", count=1000):
            records += await self.redis.hlen(key)
            records_hash += await self.redis.memory_usage(key, samples=0) or 0
        tombstones = 0
        async for key in self.redis.scan_iter(match="endusers:{*}:tombstones", count=1000):
            tombstones += await self.redis.hlen(key)
        used = info["used_memory"] - before
        self.results["redis_bytes_per_record"] = round(used / records, 1) if records else None
        self.results["redis_memory"] = {"used_memory_before": before, "used_memory_after": info["used_memory"],
                                        "records": records, "tombstones": tombstones,
                                        "records_hashes_bytes": records_hash,
                                        "records_hash_bytes_per_record": round(records_hash / records, 1) if records else None,
                                        "keys": await self.redis.dbsize()}
        log(f"Redis: {used} bytes for {records} records ({self.results['redis_bytes_per_record']} B/record)")
        # The worker holds every record of the subscriptions it counts (state plus derived index).
        rss = rss_bytes(self.d.process.pid if self.d.process else None)
        if rss is not None and self.rss_ready is not None and records:
            growth = round((rss - self.rss_ready) / records, 1)
            self.results["worker_rss_growth_bytes_per_record"] = growth
            self.results["worker_memory"] = {"rss_when_ready": self.rss_ready, "rss_at_end": rss, "records": records}
            log(f"worker: {rss - self.rss_ready} bytes of RSS growth for {records} records "
                f"({growth} B/record; includes consumer and stream buffers, not only state)")


# --- profile summary ----------------------------------------------------------------------------------


def summarize_profile(path: Path, top: int) -> dict[str, Any]:
    """Self and inclusive shares per function from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if f]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def rows(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "percent": round(100 * n / total, 1), "samples": n} for f, n in counter.most_common(top)]

    return {"file": str(path), "samples": total, "self": rows(own) if total else [],
            "inclusive": rows(inclusive) if total else []}


def _frame(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (path/to/file.py)``, with site-packages and the repo trimmed."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame.strip())
    if not match:
        return frame.strip()
    function, file = match.groups()
    file = re.sub(r".*/site-packages/", "", file)
    file = file.replace(str(ROOT) + "/", "")
    file = re.sub(r".*/lib/python3\.\d+/", "", file)
    return f"{function} ({file})"


# --- the plot -----------------------------------------------------------------------------------------


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right, third) = plt.subplots(1, 3, figsize=(16, 4.5))
    names = ["pipeline", "raw baseline"]
    values = [results["pipeline_events_per_s"], results["baseline_events_per_s"]]
    bars = left.bar(names, values, color=["tab:blue", "tab:gray"])
    left.bar_label(bars, labels=[f"{v:,.0f}" for v in values])
    left.axhline(20_000, color="tab:red", linestyle="--", linewidth=1, label="target 20,000/s")
    left.set_ylabel("events / s")
    left.set_title(f"Backlog throughput, N={results['parameters']['events']:,} (ratio {results['ratio']:.2f})")
    left.legend(loc="upper left")
    labels = ["p50", "p95", "p99"]
    visible = [results["latency_ms"][k] or 0 for k in labels]
    capacity = [results["capacity_latency_ms"][k] or 0 for k in labels]
    x = range(len(labels))
    a = right.bar([i - 0.2 for i in x], visible, width=0.4, label="counts visible in Redis")
    b = right.bar([i + 0.2 for i in x], capacity, width=0.4, label="capacity event on Kafka")
    right.bar_label(a, fmt="%.0f")
    right.bar_label(b, fmt="%.0f")
    right.axhline(250, color="tab:red", linestyle="--", linewidth=1, label="target p99 250 ms")
    right.set_xticks(list(x), labels)
    right.set_ylabel("ms")
    right.set_title(f"Latency at {results['latency']['offered_events_per_s']:,} events/s")
    right.legend(loc="upper left")
    series = results["latency"].get("series_max_ms_per_100ms") or []
    third.plot([p[0] for p in series], [p[1] for p in series], linewidth=1)
    third.axhline(250, color="tab:red", linestyle="--", linewidth=1)
    third.set_xlabel("seconds into the paced load")
    third.set_ylabel("worst latency per 100 ms (ms)")
    third.set_yscale("log")
    third.set_title("Visibility latency over time")
    fig.suptitle(f"endusers, {results['machine']['cpus']} CPUs {results['machine']['cpu_model']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, required=True, help="synthetic events after the configs")
    parser.add_argument("--out", type=Path, required=True, help="JSON results")
    parser.add_argument("--plot", type=Path, help="PNG: throughput bars and latency percentiles")
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=2000.0, help="latency phase: offered events/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="latency phase: duration")
    parser.add_argument("--watermarks", action="store_true", help="latency phase: send as publish does, with watermarks")
    parser.add_argument("--watermark-interval", type=float, default=0.2, help="with --watermarks: seconds between beats")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="latency phase: Redis poll interval")
    parser.add_argument("--batch-size", type=int, help="ENDUSERS_BATCH_SIZE of the worker (default: its own)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for the backlog")
    parser.add_argument("--workdir", default=str(ROOT / "artifacts" / "bench" / "work"))
    parser.add_argument("--profile", help="py-spy raw (collapsed stacks) output of the worker during the backlog")
    parser.add_argument("--profile-latency", help="py-spy raw output of the worker during the paced-load phase")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--profile-top", type=int, default=20)
    parser.add_argument("--profile-native", action="store_true",
                        help="py-spy --native --threads: time in C extensions gets its own frames, per thread")
    parser.add_argument("--gc-log", help="run the worker under tests/bench/gcwatch.py, logging gc pauses here")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes sharing the partitions (the scaling measurement)")
    parser.add_argument("--takeover-records", type=int, default=0,
                        help="records of the subscription whose owner is killed (takeover_s_<N>; 0: skip)")
    parser.add_argument("--background-load", type=int, default=0,
                        help="latency phase: N busy processes (pure-Python loops) competing for the cores")
    parser.add_argument("--keep", action="store_true", help="keep the topics and the Redis DB afterwards")
    args = parser.parse_args()
    results = asyncio.run(Bench(args).run())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    if args.plot:
        plot(results, args.plot)
    log(f"done in {results['run_seconds']}s: {args.out}" + (f", {args.plot}" if args.plot else ""))
    summary = {k: results.get(k) for k in ("pipeline_events_per_s", "baseline_events_per_s", "ratio", "latency_ms",
                                           "capacity_latency_ms", "redis_bytes_per_record",
                                           "worker_rss_growth_bytes_per_record", "heap_bytes_per_record",
                                           "reconfigure_ms", "worker_cpu_us_per_event", "engine_replay_events_per_s",
                                           "engine_apply_events_per_s", "repeated_login_us")} | {k: v for k, v in results.items() if k.startswith(("takeover_s_", "takeover_gone_s_"))}
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
