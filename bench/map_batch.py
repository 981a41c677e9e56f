"""Benchmark: 10,000 hash entries written with one batch update and read back with batch lookups.

corebpf (``Map.update_batch`` / ``Map.lookup_batch`` with numpy records) against a small C program
using libbpf's ``bpf_map_update_batch`` / ``bpf_map_lookup_batch`` on the same map shape (u32 -> u64,
BPF_MAP_TYPE_HASH, max_entries = N), both measured in this run. Each round uses a fresh map; the figure
is the median over rounds. Goal: corebpf / libbpf <= 1.5x.

    sudo .venv/bin/python bench/map_batch.py [--entries 10000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from corebpf import Map

HERE = Path(__file__).resolve().parent
C_SOURCE = HERE / "c" / "map_batch.c"
GOAL = 1.5


def build_anchor(workdir: str) -> str:
    """Compile the libbpf anchor with gcc; returns the binary's path."""
    binary = os.path.join(workdir, "map_batch")
    cmd = ["gcc", "-O2", "-Wall", "-o", binary, str(C_SOURCE), "-lbpf"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"building the libbpf anchor failed (needs gcc and libbpf-dev):\n{' '.join(cmd)}\n{result.stderr}")
    return binary


def run_anchor(binary: str, entries: int, rounds: int) -> tuple[list[int], list[int]]:
    out = subprocess.run([binary, str(entries), str(rounds)], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    return data["update_ns"], data["lookup_ns"]


def run_corebpf(entries: int, rounds: int) -> tuple[list[int], list[int]]:
    keys = np.arange(entries, dtype="<u4")
    values = keys.astype("<u8") * 3 + 7
    update_ns, lookup_ns = [], []
    for _ in range(rounds):
        with Map.create("hash", 4, 8, entries, name="bench_py") as m:
            t0 = time.perf_counter_ns()
            written = m.update_batch(keys, values)
            t1 = time.perf_counter_ns()
            got_keys, got_values = m.lookup_batch()
            t2 = time.perf_counter_ns()
        if written != entries or len(got_keys) != entries:
            sys.exit(f"corebpf wrote {written} and read {len(got_keys)} of {entries} entries")
        # Checked outside the timing: what came back is what went in.
        order = np.argsort(got_keys.view("<u4").ravel())
        if not np.array_equal(got_values.view("<u8").ravel()[order], values):
            sys.exit("corebpf read back different values")
        update_ns.append(t1 - t0)
        lookup_ns.append(t2 - t1)
    return update_ns, lookup_ns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="corebpf-bench-") as tmp:
        binary = build_anchor(tmp)
        # Interleave and warm up both sides so neither gets a colder kernel or allocator.
        run_anchor(binary, args.entries, 2)
        run_corebpf(args.entries, 2)
        c_upd, c_lkp = run_anchor(binary, args.entries, args.rounds)
        py_upd, py_lkp = run_corebpf(args.entries, args.rounds)
    rows = []
    for phase, py, c in (("update_batch", py_upd, c_upd), ("lookup_batch", py_lkp, c_lkp)):
        rows.append((phase, statistics.median(py), statistics.median(c)))
    total_py = statistics.median(a + b for a, b in zip(py_upd, py_lkp))
    total_c = statistics.median(a + b for a, b in zip(c_upd, c_lkp))
    rows.append(("update + lookup", total_py, total_c))
    print(f"map batch benchmark: {args.entries} entries, hash u32 -> u64, median of {args.rounds} rounds")
    print(f"{'phase':<16} {'corebpf':>12} {'libbpf (C)':>12} {'ratio':>7}")
    for phase, py, c in rows:
        print(f"{phase:<16} {py / 1e3:>9.0f} us {c / 1e3:>9.0f} us {py / c:>6.2f}x")
    ratio = total_py / total_c
    verdict = "meets" if ratio <= GOAL else "misses"
    print(f"corebpf/libbpf = {ratio:.2f}x ({verdict} the goal of <= {GOAL}x)")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
