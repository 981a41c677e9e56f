"""Ring buffer reader against the real kernel: exactness (produced == received + dropped, also under
overload), discarded records, zero-copy batches, several rings in one poller, wakeup flags, asyncio,
typed records, and closing releases every fd and mapping."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time

import numpy as np
import pytest

import corebpf
from corebpf import Map
from corebpf.btf.builder import BTFBuilder
from corebpf.errors import BPFError
from corebpf.events import (
    BPF_RB_NO_WAKEUP, BatchReleasedError, Poller, RecordType, RingBuffer, testing as producers,
)

PAGE = os.sysconf("SC_PAGE_SIZE")


def _ringbuf_or_skip(size: int) -> Map:
    try:
        return Map.create("ringbuf", 0, 0, size, name="t_ev_rb")
    except BPFError as exc:  # pragma: no cover - kernels before 5.8
        pytest.skip(f"this kernel has no ring buffer maps: {exc}")


@pytest.fixture
def ring():
    m = _ringbuf_or_skip(64 * 1024)
    yield m
    m.close()


@pytest.fixture
def counters():
    m = producers.counter_map()
    yield m
    m.close()


def seqs(records) -> list[int]:
    return [int.from_bytes(r[:8], "little") for r in records]


def test_batch_exact_and_in_order(ring, counters):
    with producers.ringbuf_output_producer(ring, counters, 8) as prog, RingBuffer(ring) as rb:
        producers.run(prog, 1000)
        with rb.read_batch() as batch:
            assert len(batch) == 1000 and batch.discarded == 0
            assert seqs(batch) == list(range(1000))
            arr = batch.array(np.dtype("<u8"))
            assert arr.tolist() == list(range(1000))
            assert not arr.flags.writeable  # a view of the read-only mapping
        assert rb.pending == 0 and rb.received == 1000
        assert producers.read_counters(counters) == (1000, 0)


def test_callback_gets_every_record_once(ring, counters):
    got: list[int] = []
    with producers.ringbuf_output_producer(ring, counters, 24) as prog, \
            RingBuffer(ring, callback=lambda r: got.append(int.from_bytes(r[:8], "little"))) as rb:
        for _ in range(5):
            producers.run(prog, 300)
            assert rb.consume() == 300
        assert got == list(range(1500))
        assert producers.read_counters(counters) == (1500, 0)


def test_batch_is_zero_copy_and_release_contract(counters):
    ring = _ringbuf_or_skip(PAGE)
    per_fill = (PAGE - 8) // 16  # the kernel keeps one record's worth free: a full ring has size-8 bytes
    with ring, producers.ringbuf_output_producer(ring, counters, 8) as prog, RingBuffer(ring) as rb:
        producers.run(prog, per_fill + 5)
        assert producers.read_counters(counters) == (per_fill + 5, 5)  # the ring was full: 5 refused
        batch = rb.read_batch()
        arr = batch.array("<u8")
        view = batch[0]
        assert arr[0] == 0 and bytes(view) == bytes(8)
        batch.release()
        with pytest.raises(BatchReleasedError):
            batch[0]
        with pytest.raises(BatchReleasedError):
            list(batch)
        producers.run(prog, per_fill)  # the producer reuses the space the batch pointed at
        # the old array is a view of the ring, not a copy: it now shows the newer records
        assert int(arr[1]) != 1 and int(arr[1]) >= per_fill + 5
        del arr, view
        assert len(rb.read_batch()) == per_fill


def test_consumer_position_moves_only_on_release(ring, counters):
    with producers.ringbuf_output_producer(ring, counters, 8) as prog, RingBuffer(ring) as rb:
        producers.run(prog, 10)
        before = rb.consumer_pos
        batch = rb.read_batch()
        assert rb.consumer_pos == before and len(batch) == 10
        second = rb.read_batch()  # reading again releases the previous batch first
        assert batch.released and len(second) == 0 and rb.consumer_pos == before + 10 * 16
        with rb.read_batch(max_records=3) as part:
            producers.run(prog, 10)
        assert len(part) == 0


def test_max_records_and_batches_over_several_reads(ring, counters):
    with producers.ringbuf_output_producer(ring, counters, 40) as prog, RingBuffer(ring) as rb:
        producers.run(prog, 100)
        got = []
        while True:
            with rb.read_batch(max_records=7) as b:
                if not b:
                    break
                assert len(b) <= 7
                got += seqs(b.copy())
        assert got == list(range(100))


def test_discarded_records_are_counted_and_skipped(ring, counters):
    with producers.ringbuf_reserve_producer(ring, counters, 16, discard_every=3) as prog, RingBuffer(ring) as rb:
        producers.run(prog, 300)
        with rb.read_batch() as b:
            kept = seqs(b)
            assert b.discarded == 100
            arr = b.array(np.dtype([("seq", "<u8"), ("pad", "<u8")]))  # one copy (the discards are gaps)
            assert arr["seq"].tolist() == kept
        assert kept == [i for i in range(300) if i % 3]
        assert rb.discarded == 100 and rb.received == 200
        producers.run(prog, 30)
        got: list[int] = []
        rb.consume(lambda r: got.append(int.from_bytes(r[:8], "little")))
        assert got == [i for i in range(300, 330) if i % 3] and rb.discarded == 110


def test_mixed_record_sizes(ring, counters):
    with producers.ringbuf_output_producer(ring, counters, 8) as small, \
            producers.ringbuf_output_producer(ring, counters, 56) as large, RingBuffer(ring) as rb:
        for i in range(40):
            producers.run(small if i % 3 else large, 1 + i % 11)
        expected = list(range(producers.read_counters(counters)[0]))
        with rb.read_batch() as b:
            lengths = {len(v) for v in b}
            assert lengths == {8, 56}
            assert seqs(b) == expected
            with pytest.raises(ValueError, match="too short"):
                b.array(np.dtype([("seq", "<u8"), ("x", "V56")]))


def test_callback_error_consumes_up_to_the_failing_record(ring, counters):
    with producers.ringbuf_output_producer(ring, counters, 8) as prog, RingBuffer(ring) as rb:
        producers.run(prog, 50)

        def fail_at_20(rec: bytes) -> None:
            if int.from_bytes(rec[:8], "little") == 20:
                raise KeyError("boom")

        with pytest.raises(KeyError):
            rb.consume(fail_at_20)
        assert rb.received == 21
        rest: list[int] = []
        assert rb.consume(lambda r: rest.append(int.from_bytes(r[:8], "little"))) == 29
        assert rest == list(range(21, 50))


def drop_counter_of(counters: Map):
    return lambda: producers.read_counters(counters)[1]


@pytest.mark.parametrize("api", ["batch", "callback"])
@pytest.mark.parametrize("producers_per_cpu", [False, True], ids=["one-producer", "producer-per-cpu"])
def test_exact_under_overload(counters, api, producers_per_cpu):
    """A small ring and producers running flat out on other threads: every record the program
    counted as produced is either received (exactly once) or counted as dropped by the program."""
    ring = _ringbuf_or_skip(PAGE)
    received: list[int] = []
    cpus = sorted(os.sched_getaffinity(0)) if producers_per_cpu else [None]
    with ring, producers.ringbuf_output_producer(ring, counters, 32) as prog, \
            RingBuffer(ring, drop_counter=drop_counter_of(counters)) as rb:
        def produce(cpu) -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})  # this thread only
            for _ in range(40):
                producers.run(prog, 2000)

        threads = [threading.Thread(target=produce, args=(cpu,)) for cpu in cpus]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads) or rb.pending:
                if api == "batch":
                    with rb.poll_batch(timeout=0.01) as b:
                        received.extend(seqs(b.iter_bytes()))
                else:
                    rb.poll(0.01, lambda r: received.append(int.from_bytes(r[:8], "little")))
        finally:
            for t in threads:
                t.join()
        attempted, failed = producers.read_counters(counters)
        assert attempted == 80_000 * len(cpus)
        assert failed > 0, "the ring never overflowed: the test did not test overload"
        assert len(received) + rb.dropped == attempted
        assert len(set(received)) == len(received) and set(received) <= set(range(attempted))
        if not producers_per_cpu:
            assert received == sorted(received)  # one producer: the ring keeps its order
        assert rb.received == len(received)


def test_drop_counter_forms(ring, counters):
    with RingBuffer(ring, drop_counter=(counters, 0)) as rb:
        counters[0] = (5).to_bytes(8, "little") + bytes(counters.value_size - 8)
        assert rb.dropped == 5  # a (map, key) pair reads the first 8 bytes of the value
    with RingBuffer(ring, drop_counter=lambda: 7) as rb:
        assert rb.dropped == 7
    with RingBuffer(ring) as rb:
        assert rb.dropped is None


def test_several_rings_in_one_poller(counters):
    rings = [_ringbuf_or_skip(16 * PAGE) for _ in range(3)]
    got: dict[int, list[int]] = {i: [] for i in range(3)}
    progs = [producers.ringbuf_output_producer(r, counters, 8) for r in rings]
    readers = [RingBuffer(r) for r in rings]
    try:
        with Poller() as poller:
            for i, rb in enumerate(readers):
                poller.add(rb, lambda rec, i=i: got[i].append(int.from_bytes(rec[:8], "little")))
            with pytest.raises(ValueError, match="already"):
                poller.add(readers[0])
            assert poller.poll(timeout=0.01) == 0
            producers.run(progs[1], 5)
            producers.run(progs[2], 3)
            assert poller.wait(timeout=1.0) is True  # woken by the default wakeup
            assert poller.poll(timeout=0) == 8
            assert got[0] == [] and len(got[1]) == 5 and len(got[2]) == 3
            producers.run(progs[0], 4)
            batches = poller.poll_batches(timeout=1.0)
            assert [b.source for b in batches] == [readers[0]] and len(batches[0]) == 4
            poller.remove(readers[0])
            assert poller.sources == readers[1:]
            producers.run(progs[0], 2)
            assert poller.poll(timeout=0.01) == 0  # ring 0 is no longer watched
            assert readers[0].pending == 2 * 16 + 4 * 16  # the batch above was released by poll()
    finally:
        for obj in (*readers, *progs, *rings):
            obj.close()


def test_closing_a_ring_takes_it_out_of_its_pollers(counters):
    ring = _ringbuf_or_skip(4 * PAGE)
    with ring, producers.ringbuf_output_producer(ring, counters, 8) as prog, Poller() as poller:
        rb, other = RingBuffer(ring), RingBuffer(ring)
        poller.add(rb, lambda r: None)
        poller.add(other, lambda r: None)
        producers.run(prog, 5)
        rb.close()  # with data pending: a stale registration would make every wait return at once
        assert poller.sources == [other]
        other.close()
        assert poller.sources == [] and poller.wait(0.05) is False


def test_no_wakeup_records_still_arrive_after_the_timeout(ring, counters):
    got: list[bytes] = []
    with producers.ringbuf_output_producer(ring, counters, 8, flags=BPF_RB_NO_WAKEUP) as quiet, \
            RingBuffer(ring) as rb, Poller() as poller:
        poller.add(rb, got.append)
        producers.run(quiet, 10)
        assert poller.wait(timeout=0.05) is False  # the producer asked for no wakeup
        assert rb.poll(timeout=0.05, callback=got.append) == 10  # data already there: no wait at all
        # nothing pending when the wait starts; records arrive meanwhile without a wakeup
        timer = threading.Timer(0.02, producers.run, (quiet, 3))
        timer.start()
        start = time.monotonic()
        n = poller.poll(timeout=0.3)
        timer.join()
        assert time.monotonic() - start >= 0.25  # slept the whole timeout: no wakeup came
        assert n == 3 and seqs(got) == list(range(13))


def test_force_wakeup_wakes_a_consumer_that_is_behind(ring, counters):
    BPF_RB_FORCE_WAKEUP = corebpf.events.BPF_RB_FORCE_WAKEUP
    with producers.ringbuf_output_producer(ring, counters, 8) as normal, \
            producers.ringbuf_output_producer(ring, counters, 8, flags=BPF_RB_FORCE_WAKEUP) as forced, \
            RingBuffer(ring) as rb, Poller(rb) as poller:
        producers.run(normal, 2)
        assert poller.wait(0.5) is True
        assert poller.wait(0) is True  # level-triggered: still readable while data is pending
        producers.run(normal, 2)  # the consumer is behind: no new wakeup, but data stays readable
        producers.run(forced, 1)
        assert poller.wait(0.5) is True
        assert rb.consume(lambda r: None) == 5
        assert poller.wait(0.05) is False


def test_async_iteration(ring, counters):
    async def main() -> list[int]:
        out: list[int] = []
        with producers.ringbuf_output_producer(ring, counters, 8) as prog, RingBuffer(ring) as rb:
            loop = asyncio.get_running_loop()
            task = loop.run_in_executor(None, lambda: [producers.run(prog, 100) or time.sleep(0.01) for _ in range(5)])
            async for rec in rb:
                out.append(int.from_bytes(rec, "little"))
                if len(out) == 500:
                    break
            await task
        return out

    assert asyncio.run(asyncio.wait_for(main(), 30)) == list(range(500))


def test_async_poller_events_and_batches(counters):
    rings = [_ringbuf_or_skip(4 * PAGE) for _ in range(2)]
    progs = [producers.ringbuf_output_producer(r, counters, 8, flags=BPF_RB_NO_WAKEUP) for r in rings]
    readers = [RingBuffer(r) for r in rings]

    async def main() -> tuple[dict, int]:
        seen: dict = {rb: [] for rb in readers}
        with Poller(*readers) as poller:
            loop = asyncio.get_running_loop()
            loop.call_later(0.02, producers.run, progs[0], 7)
            loop.call_later(0.04, producers.run, progs[1], 9)
            async for src, rec in poller.events(interval=0.02):  # no wakeups: found by the interval
                seen[src].append(int.from_bytes(rec, "little"))
                if sum(map(len, seen.values())) == 16:
                    break
            producers.run(progs[0], 4)
            n = 0
            async for batch in poller.abatches(interval=0.02):
                n += len(batch)
                if n == 4:
                    break
        return seen, n

    try:
        seen, n = asyncio.run(asyncio.wait_for(main(), 30))
        assert seen[readers[0]] == list(range(7)) and seen[readers[1]] == list(range(7, 16)) and n == 4
    finally:
        for obj in (*readers, *progs, *rings):
            obj.close()


def _event_btf():
    """BTF for ``struct event { __u64 seq; unsigned int cpu; char tag[4]; }`` (16 bytes)."""
    b = BTFBuilder()
    u64 = b.add_int("__u64", 8)
    u32 = b.add_int("unsigned int", 4)
    char = b.add_int("char", 1, signed=True, char=True)
    arr = b.add_array(char, u32, 4)
    b.add_struct("event", 16, [("seq", u64, 0), ("cpu", u32, 64), ("tag", arr, 96)])
    return b.to_btf()


def test_typed_records_through_btf(ring, counters):
    rt = RecordType.from_btf(_event_btf(), "event")
    assert rt.size == 16 and rt.dtype.names == ("seq", "cpu", "tag")
    with producers.ringbuf_output_producer(ring, counters, 16) as prog, RingBuffer(ring, record_type=rt) as rb:
        producers.run(prog, 20)
        with rb.read_batch() as b:
            values = b.values()
            assert [v.seq for v in values] == list(range(20))
            assert values[3] == {"seq": 3, "cpu": 0, "tag": ""}
            arr = b.array()
            assert arr.dtype == rt.dtype and arr["seq"].tolist() == list(range(20))
            assert arr["tag"].tolist() == [b""] * 20
        producers.run(prog, 2)
        got: list = []
        rb.consume(lambda r: got.append(rt.decode(r)))
        assert [v.seq for v in got] == [20, 21]


def test_open_by_fd_and_by_pin(ring, counters, tmp_path):
    bpffs = "/sys/fs/bpf"
    if not os.path.ismount(bpffs):
        pytest.skip("no bpffs mounted at /sys/fs/bpf")
    pin = f"{bpffs}/t_ev_rb_{os.getpid()}"
    ring.pin(pin)
    try:
        with producers.ringbuf_output_producer(ring, counters, 8) as prog, RingBuffer(pin) as by_pin, \
                RingBuffer(ring.fileno()) as by_fd:
            producers.run(prog, 3)
            assert by_pin.pending == by_fd.pending == 48  # the same ring
            assert len(by_fd.read_batch()) == 3
            by_fd.read_batch()  # releases: both see the consumer position move
            assert by_pin.pending == 0
    finally:
        os.unlink(pin)


def test_async_typed_values(ring, counters):
    rt = RecordType(np.dtype([("seq", "<u8")]))

    async def main() -> list:
        out = []
        with producers.ringbuf_output_producer(ring, counters, 8) as prog, RingBuffer(ring, record_type=rt) as rb:
            producers.run(prog, 5)
            async for value in rb.events():
                out.append(value)
                if len(out) == 5:
                    break
        return out

    assert asyncio.run(asyncio.wait_for(main(), 30)) == [{"seq": i} for i in range(5)]


def test_wrong_map_type_and_closed_reader(counters):
    with pytest.raises(ValueError, match="ringbuf"):
        RingBuffer(counters)
    ring = _ringbuf_or_skip(PAGE)
    rb = RingBuffer(ring)
    ring.close()  # the reader holds its own fd
    assert rb.pending == 0
    rb.close()
    rb.close()
    with pytest.raises(ValueError, match="closed"):
        rb.read_batch()
    assert "closed" in repr(rb)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _mappings() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def test_close_releases_fds_and_mappings(counters):
    ring = _ringbuf_or_skip(4 * PAGE)
    with ring, producers.ringbuf_output_producer(ring, counters, 8) as prog:
        for _ in range(3):  # warm up lazy imports and allocator arenas
            with RingBuffer(ring) as rb, Poller(rb):
                rb.poll(0)
        gc.collect()
        fds, maps = _fds(), _mappings()
        for i in range(300):
            rb = RingBuffer(ring)
            producers.run(prog, 3)
            if i % 3 == 0:
                with rb.read_batch() as b:
                    b.array("<u8")
            elif i % 3 == 1:
                rb.poll(0.001, lambda r: None)  # creates the reader's own epoll fd
            else:
                with Poller() as p:
                    p.add(rb, lambda r: None)
                    p.poll(0)
            rb.close()
        gc.collect()
        assert _fds() == fds
        assert _mappings() <= maps + 2  # allocator noise; 300 leaked rings would be 600+ mappings

        # a numpy array taken from a batch keeps its mapping alive past close(), then lets go
        rb = RingBuffer(ring)
        producers.run(prog, 3)
        b = rb.read_batch()
        kept = b.array("<u8").copy()
        view = b.array("<u8")
        rb.close()
        assert view.tolist() == kept.tolist()  # still readable: never a dangling view
        del view, b
        gc.collect()
        assert _fds() == fds and _mappings() <= maps + 2


def test_public_names():
    assert corebpf.RingBuffer is RingBuffer and corebpf.Poller is Poller
    assert corebpf.PerfBuffer.__name__ == "PerfBuffer" and corebpf.UserRingBuffer.__name__ == "UserRingBuffer"


def test_sync_batches_and_field_columns(counters):
    ring = _ringbuf_or_skip(4 * PAGE)
    rt = RecordType(np.dtype([("seq", "<u8"), ("zero", "<u8")]))
    with ring, producers.ringbuf_output_producer(ring, counters, 16) as prog, \
            RingBuffer(ring, record_type=rt) as rb:
        threading.Timer(0.02, producers.run, (prog, 10)).start()
        seen: list[int] = []
        for batch in rb.batches(timeout=0.3):  # ends after 0.3 s without records
            seen += batch["seq"].tolist()  # the GUIDE's batch["pid"] style
            assert batch["zero"].sum() == 0
        assert seen == list(range(10)) and rb.pending == 0


def test_records_across_the_end_of_the_ring_stay_contiguous(counters):
    """The kernel maps the data pages twice: a batch that runs past the end of the ring is still one
    zero-copy view (no record is split), round after round."""
    ring = _ringbuf_or_skip(PAGE)
    expected = 0
    crossed = 0
    with ring, producers.ringbuf_output_producer(ring, counters, 48) as prog, RingBuffer(ring) as rb:
        for _ in range(40):
            producers.run(prog, 50)  # 50 * 56 bytes: most batches cross the end of the 4 KiB ring
            start = rb.consumer_pos % rb.size
            with rb.read_batch() as b:
                arr = b.array(np.dtype([("seq", "<u8"), ("rest", "V40")]))
                crossed += start + b.nbytes + 8 * len(b) > rb.size
                assert arr["seq"].tolist() == list(range(expected, expected + 50))
                assert np.shares_memory(arr, np.frombuffer(rb._prod_mm, np.uint8))  # not a copy
            expected += 50
        assert crossed >= 20
