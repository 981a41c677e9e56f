"""Perf buffer reader against the real kernel: exactness (produced == received + lost, also under
overload), records wrapping around the ring, wakeup settings, asyncio, typed records, and closing
releases every perf event, fd and mapping (and takes the events out of the map)."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from contextlib import contextmanager

import numpy as np
import pytest

from corebpf import Map
from corebpf.btf.builder import BTFBuilder
from corebpf.events import PerfBuffer, Poller, RecordType, RingBuffer, testing as producers


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


@contextmanager
def on_cpu(cpu: int):
    """Run the calling thread on ``cpu`` (test runs execute on the CPU of the calling thread)."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


@pytest.fixture
def perf_map():
    m = Map.create("perf_event_array", 4, 4, 0, name="t_ev_perf")
    yield m
    m.close()


@pytest.fixture
def counters():
    m = producers.counter_map()
    yield m
    m.close()


def seqs(records) -> list[int]:
    return [int.from_bytes(r[:8], "little") for r in records]


def test_batches_per_cpu_exact(perf_map, counters):
    with producers.perf_output_producer(perf_map, counters, 8) as prog, PerfBuffer(perf_map, pages=4) as pb:
        with open("/sys/devices/system/cpu/online") as f:
            online = f.read().strip()
        assert len(pb.cpus) == len(_cpus()) and online.startswith(str(pb.cpus[0]))
        expected: dict[int, list[int]] = {}
        n = 0
        for cpu in pb.cpus:
            with on_cpu(cpu):
                producers.run(prog, 50)
            expected[cpu] = list(range(n, n + 50))
            n += 50
        batches = pb.read_batches()
        assert sorted(b.cpu for b in batches) == sorted(pb.cpus)
        for b in batches:
            assert len(b) == 50 and b.lost == 0
            assert seqs(b) == expected[b.cpu]
            assert b.array("<u8").tolist() == expected[b.cpu]
            assert all(len(v) == 12 for v in b)  # 8 bytes of data + the kernel's padding to 8-byte records
        pb.read_batches()  # releases the previous ones
        assert pb.received == n and pb.lost == 0
        assert producers.read_counters(counters) == (n, 0)


def test_callback_and_wraparound(perf_map, counters):
    """56-byte records in a one-page ring: records straddle the end of the ring again and again."""
    got: list[int] = []
    wrapped = 0
    with producers.perf_output_producer(perf_map, counters, 40) as prog, \
            PerfBuffer(perf_map, pages=1, callback=lambda s: got.append(int.from_bytes(s[:8], "little"))) as pb, \
            on_cpu(_cpus()[0]):
        ring = next(r for r in pb._rings if r.cpu == _cpus()[0])
        for i in range(60):
            producers.run(prog, 31)
            pending = PerfBuffer._pending(ring)
            wrapped += pending is not None and pending[1] == 0  # offset 0: the copy of a wrapped region
            if i % 2:
                assert pb.consume() == 31
            else:
                (b,) = pb.read_batches()
                assert b.array("<u8").tolist() == list(range(len(got), len(got) + 31))
                got += seqs(b)
                b.release()
        assert wrapped > 5
        assert got == list(range(60 * 31)) and pb.lost == 0


def _flush_lost(prog, cpus) -> None:
    """The kernel reports lost samples (PERF_RECORD_LOST) before the next sample it manages to write:
    write one more sample on every CPU so each pending count comes out."""
    for cpu in cpus:
        with on_cpu(cpu):
            producers.run(prog, 1)


def test_lost_samples_reported_when_the_ring_is_full(perf_map, counters):
    lost_calls: list[tuple[int, int]] = []
    with producers.perf_output_producer(perf_map, counters, 8) as prog, \
            PerfBuffer(perf_map, pages=1, lost_callback=lambda cpu, n: lost_calls.append((cpu, n))) as pb:
        cpu = _cpus()[0]
        with on_cpu(cpu):
            producers.run(prog, 1000)  # a page holds ~170 of these
        got: list[bytes] = []
        pb.consume(got.append)
        _flush_lost(prog, [cpu])
        pb.consume(got.append)
        attempted, failed = producers.read_counters(counters)
        assert failed > 0 and pb.lost == failed == pb.lost_per_cpu[cpu]
        assert len(got) + pb.lost == attempted
        assert sum(n for _, n in lost_calls) == failed and {c for c, _ in lost_calls} == {cpu}


@pytest.mark.parametrize("api", ["batch", "callback"])
def test_exact_under_overload(perf_map, counters, api):
    """Producers on every CPU faster than the consumer: received + lost == produced, no duplicates."""
    received: list[int] = []
    done = threading.Event()
    with producers.perf_output_producer(perf_map, counters, 24) as prog, PerfBuffer(perf_map, pages=1) as pb:
        def produce(cpu: int) -> None:
            with on_cpu(cpu):
                for _ in range(20):
                    producers.run(prog, 1000)

        threads = [threading.Thread(target=produce, args=(cpu,)) for cpu in pb.cpus]
        for t in threads:
            t.start()
        watcher = threading.Thread(target=lambda: ([t.join() for t in threads], done.set()))
        watcher.start()
        try:
            while not done.is_set():
                if api == "batch":
                    for b in pb.poll_batches(timeout=0.01):
                        received.extend(seqs(b.iter_bytes()))
                else:
                    pb.poll(0.01, lambda s: received.append(int.from_bytes(s[:8], "little")))
        finally:
            watcher.join()
        pb.consume(lambda s: received.append(int.from_bytes(s[:8], "little")))
        _flush_lost(prog, pb.cpus)
        pb.consume(lambda s: received.append(int.from_bytes(s[:8], "little")))
        attempted, failed = producers.read_counters(counters)
        assert attempted == 20_000 * len(pb.cpus) + len(pb.cpus)
        assert failed > 0, "no sample was lost: the test did not test overload"
        assert pb.lost == failed
        assert len(received) + pb.lost == attempted
        assert len(set(received)) == len(received)


@pytest.mark.parametrize("settings", [{"wakeup_events": 10}, {"watermark": 2048}])
def test_poll_drains_samples_that_did_not_wake(perf_map, counters, settings):
    with producers.perf_output_producer(perf_map, counters, 8) as prog, \
            PerfBuffer(perf_map, pages=2, **settings) as pb, Poller() as poller:
        got: list[bytes] = []
        poller.add(pb, got.append)
        with on_cpu(pb.cpus[0]):
            producers.run(prog, 3)  # below the wakeup threshold
        assert poller.wait(0.05) is False
        assert poller.poll(0.05) == 3 and len(got) == 3
        with on_cpu(pb.cpus[0]):
            producers.run(prog, 200)  # past either threshold
        assert poller.wait(1.0) is True
        assert poller.poll(0) == 200


def test_ring_and_perf_buffers_in_one_poller(perf_map, counters):
    ring = Map.create("ringbuf", 0, 0, 4 * os.sysconf("SC_PAGE_SIZE"), name="t_ev_mix")
    got: dict[str, list[int]] = {"ring": [], "perf": []}
    with ring, producers.perf_output_producer(perf_map, counters, 8) as pprog, \
            producers.ringbuf_output_producer(ring, counters, 8) as rprog, \
            PerfBuffer(perf_map, pages=1) as pb, RingBuffer(ring) as rb, Poller() as poller:
        poller.add(pb, lambda s: got["perf"].append(int.from_bytes(s[:8], "little")))
        poller.add(rb, lambda r: got["ring"].append(int.from_bytes(r[:8], "little")))
        producers.run(pprog, 4)
        producers.run(rprog, 6)
        assert poller.poll(1.0) == 10
        assert got == {"perf": [0, 1, 2, 3], "ring": [4, 5, 6, 7, 8, 9]}


def test_async_iteration(perf_map, counters):
    async def main() -> list[int]:
        out: list[int] = []
        with producers.perf_output_producer(perf_map, counters, 8) as prog, PerfBuffer(perf_map, pages=4) as pb:
            loop = asyncio.get_running_loop()
            task = loop.run_in_executor(None, lambda: [producers.run(prog, 50) for _ in range(4)])
            async for sample in pb:
                out.append(int.from_bytes(sample[:8], "little"))
                if len(out) == 200:
                    break
            await task
        return out

    assert sorted(asyncio.run(asyncio.wait_for(main(), 30))) == list(range(200))


def test_typed_samples(perf_map, counters):
    b = BTFBuilder()
    u64 = b.add_int("__u64", 8)
    b.add_struct("sample", 16, [("seq", u64, 0), ("zero", u64, 64)])
    rt = RecordType.from_btf(b.to_btf(), "sample")
    with producers.perf_output_producer(perf_map, counters, 16) as prog, \
            PerfBuffer(perf_map, pages=2, record_type=rt) as pb, on_cpu(_cpus()[0]):
        producers.run(prog, 12)
        (batch,) = pb.read_batches()
        assert [v.seq for v in batch.values()] == list(range(12))
        arr = batch.array()
        assert arr.dtype.names == ("seq", "zero") and arr["seq"].tolist() == list(range(12))
        assert arr.base is not None  # zero-copy view of the perf ring
        batch.release()
        with pytest.raises(ValueError, match="too short"):
            producers.run(prog, 1)
            pb.read_batches()[0].array(np.dtype("V32"))


def test_close_takes_events_out_of_the_map(perf_map, counters):
    with producers.perf_output_producer(perf_map, counters, 8) as prog:
        with PerfBuffer(perf_map, pages=1):
            producers.run(prog, 5)
        assert producers.read_counters(counters) == (5, 0)
        producers.run(prog, 5)
        assert producers.read_counters(counters) == (10, 5)  # no event at this CPU's slot any more


def test_wrong_map_and_arguments(perf_map, counters):
    with pytest.raises(ValueError, match="perf_event_array"):
        PerfBuffer(counters)
    with pytest.raises(ValueError, match="power of 2"):
        PerfBuffer(perf_map, pages=3)
    pb = PerfBuffer(perf_map, pages=1)
    pb.close()
    pb.close()
    with pytest.raises(ValueError, match="closed"):
        pb.read_batches()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _mappings() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def test_close_releases_fds_and_mappings(perf_map, counters):
    with producers.perf_output_producer(perf_map, counters, 8) as prog:
        for _ in range(3):
            with PerfBuffer(perf_map, pages=1) as pb:
                pb.poll(0, lambda s: None)
        gc.collect()
        fds, maps = _fds(), _mappings()
        for i in range(100):
            pb = PerfBuffer(perf_map, pages=1, callback=lambda s: None)
            producers.run(prog, 3)
            if i % 2:
                for b in pb.read_batches():
                    b.array("<u8")
            else:
                pb.poll(0.001)
            pb.close()
        gc.collect()
        assert _fds() == fds
        assert _mappings() <= maps + 2
