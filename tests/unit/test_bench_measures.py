"""The engine benchmark's measures stay runnable and truthful: a benchmark is never part of the suite,
so a rename behind it (a moved memo, a changed signature) would otherwise surface only on the day
someone wants figures."""

from __future__ import annotations

from counters import Replay
from tests.bench.engine_replay import bench_engine, bench_replay, generate, states_heap_bytes


def test_the_engine_measures_run_on_generated_events_and_count_what_replay_counts() -> None:
    lines = generate(2_000, 300)
    _, replay = bench_replay(lines)
    expected = Replay()
    expected.feed_lines(lines)
    document = replay.document()
    assert document == expected.document() and document["subscriptions"]
    apply_s, repeats_s, repeats = bench_engine(lines, chunk=500)
    assert apply_s > 0 and repeats_s > 0 and repeats > 0
    heap, records = states_heap_bytes(lines)
    assert records == len({(name, ref) for name, state in replay.states.items() for ref in state.records})
    assert heap > records * 50  # a record cannot take fewer bytes than its key and its fields


def test_the_background_load_runs_its_busy_processes_and_always_stops_them() -> None:
    from tests.bench.background import busy_processes

    started = []
    try:
        with busy_processes(2) as processes:
            started = list(processes)
            assert len(started) == 2 and all(p.poll() is None for p in started)
            raise RuntimeError("the measured phase failed")
    except RuntimeError:
        pass
    assert started and all(p.poll() is not None for p in started)
    with busy_processes(0) as none:
        assert none == []


def test_a_takeover_key_names_the_size_really_run() -> None:
    from tests.bench.run import takeover_size

    assert [takeover_size(n) for n in (10_000_000, 3_000_000, 2_500_000, 1_500)] == ["10m", "3m", "2500k", "1500"]
