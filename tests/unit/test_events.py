"""Event readers without a kernel: ring and perf record scanning over synthetic memory, batches
(views, numpy, release contract), callbacks' accounting when they raise, typed records."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from corebpf.btf.builder import BTFBuilder
from corebpf.btf.values import BTFValueError
from corebpf.events import Batch, BatchReleasedError, RecordType, RingBuffer
from corebpf.events import perfbuf, ringbuf
from corebpf.events._common import PAGE_SIZE

BUSY, DISCARD = ringbuf.BPF_RINGBUF_BUSY_BIT, ringbuf.BPF_RINGBUF_DISCARD_BIT


class _NoMap:
    name = "fake"

    def close(self) -> None:
        pass


class FakeRing:
    """The memory of a ring buffer (consumer page, producer page, data) in bytearrays."""

    def __init__(self, size: int = 4 * PAGE_SIZE) -> None:
        self.size = size
        self.cons = bytearray(PAGE_SIZE)
        self.prod = bytearray(PAGE_SIZE + 2 * size)
        self.pos = 0

    def add(self, payload: bytes, flags: int = 0) -> None:
        off = PAGE_SIZE + (self.pos & (self.size - 1))
        assert off + 8 + len(payload) <= len(self.prod)
        struct.pack_into("<II", self.prod, off, len(payload) | flags, 0)
        self.prod[off + 8:off + 8 + len(payload)] = payload
        self.pos += (len(payload) + 8 + 7) & ~7
        struct.pack_into("<Q", self.prod, 0, self.pos)

    def reader(self, **kwargs) -> RingBuffer:
        rb = object.__new__(RingBuffer)
        rb._map = _NoMap()
        rb._batch = None
        rb._poller = None
        rb.size, rb._mask = self.size, self.size - 1
        rb._cons_mm = rb._prod_mm = None  # the bytearrays stay with this object
        rb._cons_q = memoryview(self.cons).cast("Q")
        rb._prod_q = memoryview(self.prod).cast("Q")
        rb._words = memoryview(self.prod).cast("I")
        rb._data = memoryview(self.prod)
        rb._np_words = np.frombuffer(self.prod, dtype=np.uint32)
        rb.callback = kwargs.get("callback")
        rb.record_type = kwargs.get("record_type")
        rb.drop_counter = None
        rb.received = rb.discarded = 0
        return rb


def rec(i: int, size: int = 8) -> bytes:
    return i.to_bytes(8, "little") + bytes(size - 8)


def nums(records) -> list[int]:
    return [int.from_bytes(r[:8], "little") for r in records]


def test_uniform_records_one_zero_copy_segment():
    ring = FakeRing()
    for i in range(100):
        ring.add(rec(i))
    rb = ring.reader()
    batch = rb.read_batch()
    assert len(batch) == 100 and nums(batch) == list(range(100))
    arr = batch.array("<u8")
    assert arr.tolist() == list(range(100)) and np.shares_memory(arr, np.frombuffer(ring.prod, np.uint8))
    assert np.shares_memory(batch.array("<u8", copy=True), arr) is False
    assert batch.nbytes == 800 and batch[-1].tobytes() == rec(99) and nums(batch[2:4]) == [2, 3]
    batch.release()
    assert rb.consumer_pos == 100 * 16 and rb.received == 100


def test_stops_at_busy_and_handles_sizes_and_discards():
    ring = FakeRing()
    for i in range(20):
        ring.add(rec(i), DISCARD if i % 4 == 0 else 0)
    for i in range(20, 23):
        ring.add(rec(i, 24))
    ring.add(rec(23), BUSY)
    ring.add(rec(24))
    rb = ring.reader()
    with rb.read_batch() as b:
        assert nums(b) == [i for i in range(23) if i % 4 or i >= 20] and b.discarded == 5
        assert {len(v) for v in b} == {8, 24}
        assert nums(b.iter_bytes()) == nums(b)
        assert b.array("<u8").tolist() == nums(b)  # segments of 8 and 24 bytes: one copy
    assert rb.consumer_pos == 20 * 16 + 3 * 32  # stopped at the busy record
    assert rb.pending == 2 * 16


@pytest.mark.parametrize("n", [1, 7, 8, 9, 200])
def test_check_run_matches_a_python_walk(n):
    ring = FakeRing(16 * PAGE_SIZE)
    rng = np.random.default_rng(n)
    for i in range(n):
        ring.add(rec(i, 16), DISCARD if rng.random() < 0.2 else 0)
    rb = ring.reader()
    segs, end, count, discarded = rb._scan(rb._data, None)
    assert end == n * 24 and count + discarded == n
    flags = [struct.unpack_from("<I", ring.prod, PAGE_SIZE + i * 24)[0] & DISCARD for i in range(n)]
    assert discarded == sum(1 for f in flags if f)


def test_limit_and_chunking(monkeypatch):
    monkeypatch.setattr(ringbuf, "_CHUNK", 16)
    ring = FakeRing(16 * PAGE_SIZE)
    for i in range(100):
        ring.add(rec(i), DISCARD if i == 50 else 0)
    rb = ring.reader()
    with rb.read_batch(max_records=30) as b:
        assert nums(b) == list(range(30))
    with rb.read_batch() as b:
        assert nums(b) == [i for i in range(30, 100) if i != 50] and b.discarded == 1


def test_consume_accounts_for_a_raising_callback():
    ring = FakeRing()
    for i in range(30):
        ring.add(rec(i), DISCARD if i % 5 == 0 else 0)
    seen: list[int] = []

    def cb(r: bytes) -> None:
        seen.append(int.from_bytes(r[:8], "little"))
        if seen[-1] == 13:
            raise RuntimeError("stop")

    rb = ring.reader(callback=cb)
    with pytest.raises(RuntimeError):
        rb.consume()
    assert rb.consumer_pos == 14 * 16 and rb.received == 11 and rb.discarded == 3
    rb.callback = seen.append
    assert rb.consume() == 13
    assert rb.discarded == 6 and rb.pending == 0


def test_batch_release_contract():
    calls: list[int] = []
    buf = memoryview(bytearray(64))
    b = Batch(None, [(buf, 8, 16, 3, 8, None)], 3, 0, 0, lambda: calls.append(1), [buf])
    views = list(b)
    assert len(views) == 3 and not b.released
    b.release()
    b.release()
    assert calls == [1] and b.released
    for access in (lambda: b[0], lambda: list(b), lambda: b.array("<u8"), b.copy):
        with pytest.raises(BatchReleasedError):
            access()
    assert "released" in repr(b)
    with pytest.raises(ValueError, match="record type"):
        Batch(None, [], 0, 0, 0, None, []).values()
    with pytest.raises(ValueError, match="no dtype"):
        Batch(None, [], 0, 0, 0, None, []).array()
    assert Batch(None, [], 0, 0, 0, None, []).array("<u4").shape == (0,)


def _perf_sample(payload: bytes) -> bytes:
    raw = (len(payload) + 4 + 7) & ~7
    body = struct.pack("<I", raw - 4) + payload + bytes(raw - 4 - len(payload))
    return struct.pack("<IHH", perfbuf.PERF_RECORD_SAMPLE, 0, 8 + len(body)) + body


def _perf_lost(n: int) -> bytes:
    return struct.pack("<IHHQQ", perfbuf.PERF_RECORD_LOST, 0, 24, 7, n)


def test_perf_scan_samples_lost_and_other_records():
    data = b"".join([*(_perf_sample(rec(i)) for i in range(12)), _perf_lost(5),
                     struct.pack("<IHH", 14, 0, 16) + bytes(8),  # another record type: skipped
                     *(_perf_sample(rec(i, 16)) for i in range(12, 14))])
    buf = memoryview(bytearray(data))
    segs, count, marks = perfbuf._scan(buf, 0, len(buf))
    assert count == 14 and [n for _, n in marks] == [5]
    b = Batch(None, segs, count, 0, 5, None, [buf], header_size=12)
    assert nums(b) == list(range(14)) and nums(b.copy()) == list(range(14))
    assert [len(v) for v in b] == [12] * 12 + [20] * 2  # the kernel's padding is part of the sample
    segs, count, marks = perfbuf._scan(buf, 0, len(buf), limit=5)
    assert count == 5
    with pytest.raises(RuntimeError, match="corrupt"):
        perfbuf._scan(memoryview(bytearray(struct.pack("<IHH", 9, 0, 4) + bytes(8))), 0, 12)


def _event_btf():
    b = BTFBuilder()
    u32 = b.add_int("unsigned int", 4)
    i64 = b.add_int("long long", 8, signed=True)
    char = b.add_int("char", 1, signed=True, char=True)
    comm = b.add_array(char, u32, 8)
    kind = b.add_enum("kind", [("OPEN", 1), ("CLOSE", 2)])
    b.add_struct("event", 24, [("pid", u32, 0), ("kind", kind, 32), ("ts", i64, 64), ("comm", comm, 128)])
    return b.to_btf()


def test_record_type_through_btf():
    rt = RecordType.from_btf(_event_btf(), "event")
    raw = struct.pack("<IIq8s", 42, 2, -5, b"bash")
    value = rt.decode(raw + bytes(4))  # trailing padding is ignored
    assert value.pid == 42 and str(value.kind) == "CLOSE" and value.ts == -5 and value.comm == "bash"
    arr = np.frombuffer(raw * 3, dtype=rt.dtype)
    assert arr["pid"].tolist() == [42] * 3 and arr["comm"][0] == b"bash"
    with pytest.raises(BTFValueError):
        rt.decode(raw[:10])
    with pytest.raises(ValueError, match="no type named"):
        RecordType.from_btf(_event_btf(), "nope")


def test_record_type_from_numpy_dtype_and_batch_values():
    rt = RecordType(np.dtype([("a", "<u4"), ("b", "<u4")]))
    assert rt.size == 8 and rt.decode(struct.pack("<II", 1, 2)) == {"a": 1, "b": 2}
    assert RecordType("<u8").decode(rec(9)) == 9
    ring = FakeRing()
    for i in range(4):
        ring.add(struct.pack("<II", i, i * 10))
    rb = ring.reader(record_type=rt)
    with rb.read_batch() as b:
        assert b.values() == [{"a": i, "b": i * 10} for i in range(4)]
        assert b.array()["b"].tolist() == [0, 10, 20, 30]


def test_public_names_are_documented():
    import inspect

    import corebpf.events as events

    missing = []
    for name in events.__all__:
        obj = getattr(events, name)
        if inspect.isclass(obj):
            if not obj.__doc__:
                missing.append(name)
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                    continue
                doc = member.__doc__ if not isinstance(member, property) else member.fget.__doc__
                if not doc:
                    missing.append(f"{name}.{attr}")
    assert not missing, f"public names without a docstring: {missing}"
