"""User ring buffer writer against the real kernel: samples written from Python are drained by a
program calling bpf_user_ringbuf_drain (built with corebpf.asm), in order, discards skipped."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest

from corebpf import Map
from corebpf.errors import BPFError
from corebpf.events import RingFullError, UserRingBuffer, testing as producers

PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def user_ring():
    try:
        m = Map.create("user_ringbuf", 0, 0, PAGE, name="t_ev_urb")
    except BPFError as exc:  # pragma: no cover - kernels before 6.1
        pytest.skip(f"this kernel has no user ring buffer maps: {exc}")
    yield m
    m.close()


@pytest.fixture
def drain(user_ring):
    totals = producers.counter_map()
    prog, btf = producers.user_ringbuf_consumer(user_ring, totals)

    def run() -> tuple[int, int, int]:
        """Drain once: (return value of bpf_user_ringbuf_drain, samples so far, sum of their first u64)."""
        ret = prog.test_run(producers.PACKET).return_value
        count, total = producers.read_counters(totals)
        return ret, count, total

    yield run
    prog.close()
    btf.close()
    totals.close()


def u64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def test_write_and_drain(user_ring, drain):
    with UserRingBuffer(user_ring) as w:
        for i in range(1, 11):
            w.write(u64(i) + bytes(i))  # samples of different sizes
        assert w.pending == sum((8 + i + 8 + 7) & ~7 for i in range(1, 11))
        assert drain() == (10, 10, 55)
        assert w.pending == 0 and w.free == w.size
        assert drain() == (0, 10, 55)


def test_reserve_submit_discard(user_ring, drain):
    with UserRingBuffer(user_ring) as w:
        with w.reserve(8) as s:
            s.data[:] = u64(100)
        s2 = w.reserve(16)
        s2.data[:8] = u64(1000)
        s2.discard()
        assert s2.done and s.done
        with pytest.raises(ValueError, match="already"):
            s2.submit()
        with pytest.raises(KeyError):
            with w.reserve(8) as s3:
                s3.data[:] = u64(5000)
                raise KeyError("discarded on error")
        w.write(u64(7))
        ret, count, total = drain()
        assert (count, total) == (2, 107)  # the discarded samples were skipped
        assert ret == 2


def test_busy_sample_blocks_the_drain_until_submitted(user_ring, drain):
    with UserRingBuffer(user_ring) as w:
        w.write(u64(1))
        held = w.reserve(8)
        w.write(u64(2))
        assert drain()[1:] == (1, 1)  # stops at the sample still being written
        held.data[:] = u64(40)
        held.submit()
        assert drain()[1:] == (3, 43)


def test_full_ring_and_waiting_for_room(user_ring, drain):
    with UserRingBuffer(user_ring) as w:
        n = 0
        with pytest.raises(RingFullError):
            while True:
                w.write(u64(1) + bytes(56))  # 72 bytes each
                n += 1
        assert n == PAGE // 72
        with pytest.raises(ValueError, match="holds"):
            w.reserve(PAGE)
        timer = threading.Timer(0.05, drain)
        timer.start()
        start = time.monotonic()
        w.write(u64(1), timeout=5.0)  # waits until the drain above makes room
        timer.join()
        assert time.monotonic() - start >= 0.04
        assert drain()[1] == n + 1


def test_write_many(user_ring, drain):
    import numpy as np

    with UserRingBuffer(user_ring) as w:
        arr = np.arange(1, 21, dtype="<u8")
        assert w.write_many(arr) == 20
        assert drain()[1:] == (20, 210)


def test_wrong_map_closed_writer_and_leaks(user_ring, drain):
    ring = Map.create("ringbuf", 0, 0, PAGE)
    with ring, pytest.raises(ValueError, match="user_ringbuf"):
        UserRingBuffer(ring)
    w = UserRingBuffer(user_ring)
    w.close()
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.write(b"x")
    gc.collect()
    fds = len(os.listdir("/proc/self/fd"))
    for i in range(200):
        with UserRingBuffer(user_ring) as w:
            w.write(u64(i))
            if i % 20 == 0:
                drain()
    drain()
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == fds
