"""Open the kernel's BTF, find ``struct task_struct`` and the byte offset of ``pid``: corebpf vs libbpf.

Goal: warm (index cached on disk) <= 1.0x libbpf, cold (no cache) <= 10x libbpf.

The anchor is bench/c/btf_open.c (compiled here with ``gcc -O2 ... -lbpf``): ``btf__load_vmlinux_btf``,
``btf__find_by_name_kind``, a walk over the members, ``btf__free``, timed inside the C program over
many iterations. corebpf is timed in-process, each iteration opening a fresh ``BTF`` object (not
the per-process shared ``BTF.vmlinux()``, which would be free after the first call):

* warm: ``BTF.from_file(vmlinux)`` with the index cache entry present;
* cold: ``BTF.from_file(vmlinux, cache=False)``, a full parse;
* cold+store: no cache entry yet: the open parses and hands the entry to a background writer
  (the write itself is not timed; the first open after boot pays only the parse).

Runs are interleaved (C, warm, cold, ...) and medians reported, as wall time and as CPU time of
the process (the latter is steadier when other work shares the machine).

    .venv/bin/python bench/btf_open.py [--rounds 7] [--iterations 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VMLINUX = Path("/sys/kernel/btf/vmlinux")


def build_anchor(out_dir: Path) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise SystemExit("gcc not found: cannot build the libbpf anchor")
    exe = out_dir / "btf_open"
    subprocess.run([gcc, "-O2", "-o", str(exe), str(HERE / "c" / "btf_open.c"), "-lbpf"], check=True)
    return exe


def run_anchor(exe: Path, iterations: int) -> tuple[float, float, int]:
    """(wall s, CPU s) per iteration and the pid offset libbpf found."""
    out = subprocess.run([str(exe), str(iterations)], check=True, capture_output=True, text=True).stdout
    res = json.loads(out)
    return res["ns_per_iter"] / 1e9, res["cpu_ns_per_iter"] / 1e9, res["pid_offset"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not VMLINUX.exists():
        print(f"{VMLINUX} is missing: the kernel has no BTF", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="corebpf-bench-btf-"))
    os.environ["COREBPF_CACHE_DIR"] = str(tmp / "cache")
    sys.path.insert(0, str(HERE.parent / "src"))
    from corebpf.btf import BTF, Kind, index_cache

    def lookup(cache: bool) -> int:
        btf = BTF.from_file(VMLINUX, cache=cache)
        return btf.find("task_struct", Kind.STRUCT).member("pid").offset

    def timed(fn, n: int) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n

    def cold_store(n: int) -> tuple[float, float]:
        total = cpu_total = 0.0
        for _ in range(n):
            index_cache.clear()  # waits for the previous background write, then removes it
            start, cpu = time.perf_counter(), time.process_time()
            lookup(True)
            total += time.perf_counter() - start
            cpu_total += time.process_time() - cpu
        index_cache.wait()
        return total / n, cpu_total / n

    try:
        exe = build_anchor(tmp)
        c_offset = run_anchor(exe, 3)[2]
        py_offset = lookup(True)  # also writes the cache entry
        if py_offset != c_offset:
            print(f"MISMATCH: libbpf says pid is at {c_offset}, corebpf says {py_offset}", file=sys.stderr)
            return 1
        lookup(False)
        results: dict[str, list[tuple[float, float]]] = {"libbpf": [], "warm": [], "cold": [], "cold+store": []}
        n = args.iterations
        for _ in range(args.rounds):
            results["libbpf"].append(run_anchor(exe, n)[:2])
            lookup(True)  # make sure the entry exists (cold+store removes it)
            results["warm"].append(timed(lambda: lookup(True), n))
            results["cold"].append(timed(lambda: lookup(False), max(3, n // 4)))
            results["cold+store"].append(cold_store(max(3, n // 4)))
        wall = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in results.items()}
        report = {
            "pid_offset": py_offset,
            "wall_ms": {k: round(v * 1e3, 3) for k, v in wall.items()},
            "cpu_ms": {k: round(v * 1e3, 3) for k, v in cpu.items()},
            "wall_ratio_vs_libbpf": {k: round(v / wall["libbpf"], 2) for k, v in wall.items() if k != "libbpf"},
            "cpu_ratio_vs_libbpf": {k: round(v / cpu["libbpf"], 2) for k, v in cpu.items() if k != "libbpf"},
            "goal": {"warm": 1.0, "cold": 10.0},
            "load_average": os.getloadavg()[0],
        }
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"task_struct.pid at byte {py_offset} (libbpf agrees); load average {os.getloadavg()[0]:.1f}")
            print(f"{'':12} {'wall ms':>9} {'x libbpf':>9} {'CPU ms':>9} {'x libbpf':>9}  goal")
            for k in ("libbpf", "warm", "cold", "cold+store"):
                goal = {"warm": "<= 1.0x", "cold": "<= 10x"}.get(k, "")
                print(f"{k:12} {wall[k] * 1e3:9.3f} {wall[k] / wall['libbpf']:8.2f}x "
                      f"{cpu[k] * 1e3:9.3f} {cpu[k] / cpu['libbpf']:8.2f}x  {goal}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
