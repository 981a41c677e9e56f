"""Differential test: libbpf (through ctypes, the bcc pattern) and corebpf read the same production
pattern -- mixed sizes, discarded records, several rounds around the ring -- and must see the same
records, byte for byte. libbpf.so comes from libbpf-dev/libbpf1; skipped when it is not installed."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import pytest

from corebpf import Map
from corebpf.events import RingBuffer, UserRingBuffer, testing as producers

PAGE = os.sysconf("SC_PAGE_SIZE")


def libbpf() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf")
    if not name:
        pytest.skip("libbpf.so is not installed (apt-get install libbpf1): no oracle to compare with")
    return ctypes.CDLL(name, use_errno=True)


CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


def produce_pattern(ring: Map, counters: Map, round_: int) -> None:
    """A deterministic mix: 8/24/56-byte records from output, 16-byte ones from reserve (every third
    discarded)."""
    progs = [producers.ringbuf_output_producer(ring, counters, 8),
             producers.ringbuf_output_producer(ring, counters, 24),
             producers.ringbuf_reserve_producer(ring, counters, 16, discard_every=3),
             producers.ringbuf_output_producer(ring, counters, 56)]
    try:
        for i in range(12):
            producers.run(progs[(i + round_) % 4], 1 + (i * 7 + round_) % 9)
    finally:
        for p in progs:
            p.close()


def test_same_records_as_libbpf():
    lib = libbpf()
    lib.ring_buffer__new.restype = ctypes.c_void_p
    lib.ring_buffer__new.argtypes = [ctypes.c_int, CB, ctypes.c_void_p, ctypes.c_void_p]
    lib.ring_buffer__consume.argtypes = [ctypes.c_void_p]
    lib.ring_buffer__free.argtypes = [ctypes.c_void_p]
    ring_a = Map.create("ringbuf", 0, 0, PAGE, name="t_ev_lib")
    ring_b = Map.create("ringbuf", 0, 0, PAGE, name="t_ev_ours")
    ca, cb_ = producers.counter_map(), producers.counter_map()
    theirs: list[bytes] = []

    @CB
    def on_record(ctx: int, data: int, size: int) -> int:
        theirs.append(ctypes.string_at(data, size))
        return 0

    rb = lib.ring_buffer__new(ring_a.fileno(), on_record, None, None)
    assert rb, f"ring_buffer__new: errno {ctypes.get_errno()}"
    ours: list[bytes] = []
    try:
        with RingBuffer(ring_b) as reader:
            for round_ in range(8):  # 8 rounds of ~1.5 KiB in a 4 KiB ring: records cross the end
                produce_pattern(ring_a, ca, round_)
                produce_pattern(ring_b, cb_, round_)
                assert lib.ring_buffer__consume(rb) >= 0
                if round_ % 2:
                    with reader.read_batch() as batch:
                        ours += batch.copy()
                else:
                    reader.consume(ours.append)
    finally:
        lib.ring_buffer__free(rb)
        for m in (ring_a, ring_b, ca, cb_):
            m.close()
    assert len(ours) > 200
    assert ours == theirs


def test_user_ringbuf_samples_drain_like_libbpfs():
    """Samples written by libbpf's user_ring_buffer API and by UserRingBuffer drain to the same totals."""
    lib = libbpf()
    if not hasattr(lib, "user_ring_buffer__new"):
        pytest.skip("this libbpf has no user_ring_buffer API (needs libbpf 1.1)")
    lib.user_ring_buffer__new.restype = ctypes.c_void_p
    lib.user_ring_buffer__new.argtypes = [ctypes.c_int, ctypes.c_void_p]
    lib.user_ring_buffer__reserve.restype = ctypes.c_void_p
    lib.user_ring_buffer__reserve.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.user_ring_buffer__submit.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.user_ring_buffer__discard.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.user_ring_buffer__free.argtypes = [ctypes.c_void_p]
    results = []
    for writer in ("libbpf", "corebpf"):
        urb_map = Map.create("user_ringbuf", 0, 0, PAGE, name="t_ev_urb_d")
        totals = producers.counter_map()
        prog, btf = producers.user_ringbuf_consumer(urb_map, totals)
        try:
            samples = [(i * 1000 + 7).to_bytes(8, "little") + bytes(i % 5) for i in range(40)]
            discard = [i % 7 == 3 for i in range(40)]
            if writer == "libbpf":
                urb = lib.user_ring_buffer__new(urb_map.fileno(), None)
                assert urb, f"user_ring_buffer__new: errno {ctypes.get_errno()}"
                try:
                    for s, d in zip(samples, discard):
                        p = lib.user_ring_buffer__reserve(urb, len(s))
                        assert p
                        ctypes.memmove(p, s, len(s))
                        (lib.user_ring_buffer__discard if d else lib.user_ring_buffer__submit)(urb, p)
                finally:
                    lib.user_ring_buffer__free(urb)
            else:
                with UserRingBuffer(urb_map) as w:
                    for s, d in zip(samples, discard):
                        sample = w.reserve(len(s))
                        sample.data[:] = s
                        sample.discard() if d else sample.submit()
            drained = prog.test_run(producers.PACKET).return_value
            results.append((drained, producers.read_counters(totals)))
        finally:
            prog.close()
            btf.close()
            totals.close()
            urb_map.close()
    assert results[0] == results[1]
    assert results[0][1][0] == sum(1 for d in range(40) if d % 7 != 3)
