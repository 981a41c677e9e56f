"""Benchmark: open + CO-RE relocate + load of an object with 10 programs and ~60 CO-RE relocations.

corebpf (``corebpf.load``: ELF parse, externs, CO-RE against vmlinux BTF, linking, BTF load, maps,
program loads) against a small C program doing ``bpf_object__open_file`` + ``bpf_object__load`` with
libbpf on the same object (``tests/corpus/core_bench.bpf.o``), both measured in this run. The C anchor
times itself over several iterations (each parses vmlinux BTF again: libbpf keeps nothing across
objects). corebpf is measured three ways:

* cold: the first load of a fresh process with corebpf's on-disk BTF index cache cleared (vmlinux BTF
  scanned, every CO-RE candidate type decoded for the first time);
* first load: a fresh process with the on-disk index cache present;
* cached: later loads in the same process, the vmlinux BTF index (and decoded types) in memory --
  the figure the goal is about.

Python's module imports happen before the clock starts in the child processes (as the C anchor's
process start and dynamic linking are not timed either).

Goal: cached / libbpf <= 1.0x.  ``sudo .venv/bin/python bench/load_object.py [--rounds 10]``
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
C_SOURCE = HERE / "c" / "load_object.c"
OBJECT = ROOT / "tests" / "corpus" / "core_bench.bpf.o"
GOAL = 1.0

_CHILD = r"""
import json, sys, time
clear = sys.argv[1] == "cold"
if clear:
    from corebpf.btf import index_cache
    index_cache.clear()
import corebpf, corebpf.loader.load, corebpf.btf.core, corebpf.btf.archive, corebpf.btf.index_cache
t0 = time.perf_counter_ns()
obj = corebpf.load(sys.argv[2])
t1 = time.perf_counter_ns()
n = len(obj.programs)
obj.close()
print(json.dumps({"ns": t1 - t0, "programs": n}))
"""


def build_anchor(workdir: str) -> str:
    """Compile the libbpf anchor with gcc; returns the binary's path."""
    binary = os.path.join(workdir, "load_object")
    cmd = ["gcc", "-O2", "-Wall", "-o", binary, str(C_SOURCE), "-lbpf"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"building the libbpf anchor failed (needs gcc and libbpf-dev):\n{' '.join(cmd)}\n{result.stderr}")
    return binary


def run_anchor(binary: str, obj: Path, rounds: int) -> tuple[list[int], int]:
    out = subprocess.run([binary, str(obj), str(rounds)], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"libbpf anchor failed: {out.stderr.strip()}")
    data = json.loads(out.stdout)
    return [o + ld for o, ld in zip(data["open_ns"], data["load_ns"])], data["programs"]


def run_child(mode: str, obj: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(obj)], capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"corebpf load failed in a child process:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)["ns"]


def run_steady(obj: Path, rounds: int) -> tuple[list[int], int]:
    import corebpf

    corebpf.load(obj).close()  # vmlinux BTF opened, feature probes cached
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        o = corebpf.load(obj)
        times.append(time.perf_counter_ns() - t0)
        n = len(o.programs)
        o.close()
    return times, n


def _ms(ns: float) -> str:
    return f"{ns / 1e6:8.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--object", type=Path, default=OBJECT)
    args = parser.parse_args(argv)
    from corebpf.elf import ObjectSpec

    spec = ObjectSpec.from_file(args.object)
    relos = sum(len(p.core_relos) for p in (*spec.programs.values(), *spec.subprograms.values()))
    with tempfile.TemporaryDirectory(prefix="corebpf-bench-") as tmp:
        binary = build_anchor(tmp)
        run_anchor(binary, args.object, 2)  # warm the page cache for both sides
        libbpf, n_c = run_anchor(binary, args.object, args.rounds)
    cold = [run_child("cold", args.object) for _ in range(3)]
    cached = [run_child("cached", args.object) for _ in range(max(3, args.rounds // 2))]
    steady, n_py = run_steady(args.object, args.rounds)
    if n_c != n_py:
        sys.exit(f"libbpf loaded {n_c} programs, corebpf {n_py}")
    lib = statistics.median(libbpf)
    rows = [("libbpf (C, open+load, median)", lib), ("corebpf cold (index cache cleared)", statistics.median(cold)),
            ("corebpf first load (fresh process)", statistics.median(cached)),
            ("corebpf cached (same process, median)", statistics.median(steady))]
    print(f"object: {args.object.name}: {n_py} programs, {relos} CO-RE relocations; rounds: {args.rounds}")
    for label, value in rows:
        print(f"  {label:40s} {_ms(value)}   ratio {value / lib:5.2f}x")
    ratio = statistics.median(steady) / lib
    print(f"ratio corebpf/libbpf with the BTF index cached: {ratio:.2f}x (goal <= {GOAL}x): "
          f"{'OK' if ratio <= GOAL else 'above goal'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
