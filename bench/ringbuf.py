"""Benchmark: ring buffer consumer throughput, corebpf against libbpf, on the same ring and producer.

The producer is the same for every consumer: a tc (``sched_cls``) program calling ``bpf_ringbuf_output`` with
``BPF_RB_NO_WAKEUP``, run with ``BPF_PROG_TEST_RUN`` (repeat = what fits in the ring). Each round fills
the ring, then one consumer drains it while the clock runs, so the figures are about the consumer.
Records are 8 and 64 bytes. Consumers:

* ``libbpf C``: ``ring_buffer__consume()`` with a counting C callback (bench/c/ringbuf_consumer.c,
  built here with gcc -lbpf; the ring's fd is inherited by the process);
* ``corebpf batch``: ``ring.read_batch()``, ``len(batch)``, ``batch.release()`` (zero-copy);
* ``corebpf batch+numpy``: the same plus ``batch.array()["seq"].sum()`` (reads every record's data;
  informational, the C callback does not read the data);
* ``corebpf batch iter``: the same, iterating the batch's memoryviews one by one (informational);
* ``corebpf batch iter_bytes``: the same, iterating ``batch.iter_bytes()`` copies (informational);
* ``corebpf callback``: ``ring.consume(callback)`` with a counting Python callback (gets ``bytes``);
* ``libbpf ctypes callback``: the bcc pattern, libbpf.so through ctypes with ``ring_buffer__new`` and a
  ``CFUNCTYPE`` Python callback doing the same counting.

Goals: batch >= 1.0x libbpf C; callback >= 1.0x libbpf ctypes callback. Every round runs every
consumer once, in turn (load changes on a shared machine hit them alike); figures are medians.

    sudo .venv/bin/python bench/ringbuf.py [--ring-mb 16] [--rounds 15] [--sizes 8,64]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from corebpf import Map
from corebpf.events import BPF_RB_NO_WAKEUP, RingBuffer
from corebpf.events import testing as producers

HERE = Path(__file__).resolve().parent
C_SOURCE = HERE / "c" / "ringbuf_consumer.c"
BATCH_GOAL = CALLBACK_GOAL = 1.0


def build_anchor(workdir: str) -> str:
    """Compile the libbpf consumer with gcc; returns the binary's path."""
    binary = os.path.join(workdir, "ringbuf_consumer")
    cmd = ["gcc", "-O2", "-Wall", "-o", binary, str(C_SOURCE), "-lbpf"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"building the libbpf anchor failed (needs gcc and libbpf-dev):\n{' '.join(cmd)}\n{res.stderr}")
    return binary


class Bench:
    """One ring, one producer, one counter map, shared by every consumer."""

    def __init__(self, ring_bytes: int, record_size: int) -> None:
        self.ring = Map.create("ringbuf", 0, 0, ring_bytes, name="bench_rb")
        self.counters = producers.counter_map()
        self.prog = producers.ringbuf_output_producer(self.ring, self.counters, record_size, BPF_RB_NO_WAKEUP)
        self.per_fill = ring_bytes // ((record_size + 8 + 7) & ~7)
        self.record_size = record_size

    def fill(self) -> int:
        """Fill the (empty) ring; returns how many records the producer wrote."""
        before = producers.read_counters(self.counters)
        producers.run(self.prog, self.per_fill)
        after = producers.read_counters(self.counters)
        return (after[0] - before[0]) - (after[1] - before[1])

    def close(self) -> None:
        for obj in (self.prog, self.counters, self.ring):
            obj.close()


Drain = Callable[[], tuple[int, int]]
"""Drains the ring once: (records, nanoseconds spent)."""


def timed(fn: Callable[[], int]) -> Drain:
    def drain() -> tuple[int, int]:
        t0 = time.perf_counter_ns()
        n = fn()
        return n, time.perf_counter_ns() - t0
    return drain


class CAnchor:
    """The C consumer in its own process, sharing the ring through an inherited fd."""

    def __init__(self, binary: str, ring_fd: int) -> None:
        self.proc = subprocess.Popen([binary, str(ring_fd)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, pass_fds=(ring_fd,))

    def drain(self) -> tuple[int, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("consume\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            sys.exit("the libbpf consumer died")
        got, ns = map(int, line.split())
        return got, ns

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        self.proc.wait()


class CtypesLibbpf:
    """The bcc pattern: libbpf's ring_buffer through ctypes, a Python callback per record."""

    cb_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

    def __init__(self, ring_fd: int) -> None:
        lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
        lib.ring_buffer__new.restype = ctypes.c_void_p
        lib.ring_buffer__new.argtypes = [ctypes.c_int, self.cb_type, ctypes.c_void_p, ctypes.c_void_p]
        lib.ring_buffer__consume.argtypes = [ctypes.c_void_p]
        lib.ring_buffer__free.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.count = 0

        def on_record(ctx: int, data: int, size: int) -> int:
            self.count += 1
            return 0

        self.cb = self.cb_type(on_record)  # keep the trampoline alive as long as the ring
        self.rb = lib.ring_buffer__new(ring_fd, self.cb, None, None)
        if not self.rb:
            sys.exit(f"ring_buffer__new failed: errno {ctypes.get_errno()}")

    def consume(self) -> int:
        self.count = 0
        self.lib.ring_buffer__consume(self.rb)
        return self.count

    def close(self) -> None:
        self.lib.ring_buffer__free(self.rb)


def corebpf_drains(ring: RingBuffer) -> dict[str, Callable[[], int]]:
    """The corebpf consumers, each draining ``ring`` completely and returning the records seen."""
    def batch_len() -> int:
        n = 0
        while True:
            b = ring.read_batch()
            k = len(b)
            b.release()
            if not k:
                return n
            n += k

    def batch_numpy() -> int:
        n = 0
        while True:
            with ring.read_batch() as b:
                k = len(b)
                if not k:
                    return n
                int(b.array()["seq"].sum())
            n += k

    def batch_iter() -> int:
        n = 0
        while True:
            with ring.read_batch() as b:
                k = 0
                for _ in b:
                    k += 1
            if not k:
                return n
            n += k

    def batch_bytes() -> int:
        n = 0
        while True:
            with ring.read_batch() as b:
                k = 0
                for _ in b.iter_bytes():
                    k += 1
            if not k:
                return n
            n += k

    count = [0]

    def on_record(record: bytes) -> None:
        count[0] += 1

    def callback() -> int:
        count[0] = 0
        ring.consume(on_record)
        return count[0]

    return {"corebpf batch": batch_len, "corebpf batch+numpy": batch_numpy, "corebpf batch iter": batch_iter,
            "corebpf batch iter_bytes": batch_bytes, "corebpf callback": callback}


def measure(binary: str, bench: Bench, rounds: int) -> dict[str, list[float]]:
    """records/s per consumer; every round runs each consumer once, in turn, so that changes in the
    machine's load during the run affect them alike."""
    dtype = np.dtype([("seq", "<u8"), ("rest", f"V{bench.record_size - 8}")]) if bench.record_size > 8 \
        else np.dtype([("seq", "<u8")])
    anchor = CAnchor(binary, bench.ring.fileno())
    via_ctypes = CtypesLibbpf(bench.ring.fileno())
    ring = RingBuffer(bench.ring, record_type=dtype)
    try:
        drains: dict[str, Drain] = {"libbpf C": anchor.drain, "libbpf ctypes callback": timed(via_ctypes.consume)}
        drains.update({name: timed(fn) for name, fn in corebpf_drains(ring).items()})
        rates: dict[str, list[float]] = {name: [] for name in drains}
        for _ in range(rounds):
            for name, drain in drains.items():
                produced = bench.fill()
                got, ns = drain()
                if got != produced:
                    sys.exit(f"{name} read {got} records of {produced}")
                rates[name].append(got / (ns / 1e9))
        return rates
    finally:
        ring.close()
        via_ctypes.close()
        anchor.close()


def fmt(rate: float) -> str:
    return f"{rate / 1e6:10.2f} M/s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ring-mb", type=int, default=16, help="ring size in MiB (a power of 2)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--sizes", default="8,64", help="record sizes in bytes (multiples of 8)")
    args = ap.parse_args()
    ring_bytes = args.ring_mb << 20
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_anchor(tmp)
        ok = True
        for size in (int(s) for s in args.sizes.split(",")):
            bench = Bench(ring_bytes, size)
            try:
                results = measure(binary, bench, args.rounds)
            finally:
                bench.close()
            med = {k: statistics.median(v) for k, v in results.items()}
            best = {k: max(v) for k, v in results.items()}
            print(f"\n{size}-byte records, {bench.per_fill} per fill of a {args.ring_mb} MiB ring, "
                  f"{args.rounds} rounds (records/s, median and best round):")
            for name in med:
                print(f"  {name:<26}{fmt(med[name])}  {fmt(best[name])}")
            print("  ratios (median, best):")
            for name, anchor, goal in (("corebpf batch", "libbpf C", BATCH_GOAL),
                                       ("corebpf batch+numpy", "libbpf C", None),
                                       ("corebpf batch iter", "libbpf C", None),
                                       ("corebpf batch iter_bytes", "libbpf C", None),
                                       ("corebpf callback", "libbpf ctypes callback", CALLBACK_GOAL)):
                ratio = med[name] / med[anchor]
                ratio_best = best[name] / best[anchor]
                verdict = "" if goal is None else ("  goal met" if ratio >= goal else f"  below the {goal:.1f}x goal")
                ok &= goal is None or ratio >= goal
                print(f"    {name} / {anchor}: {ratio:6.2f}x {ratio_best:6.2f}x{verdict}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
