"""``corebpf doctor --json`` wall time vs ``bpftool feature probe kernel`` (goal: <= 2x).

Both run as subprocesses, several times each, interleaved; the medians and their ratio are
printed. corebpf runs cold (no disk cache: every probe really runs) and, for reference, warm
(``--cache``: probe results reused from this boot). corebpf probes more than bpftool (attach
methods with real links, tracing variants with BTF targets, host facts, the inventory).

    .venv/bin/python bench/doctor.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        print("bpftool not found (apt-get install bpftool): no anchor to compare with", file=sys.stderr)
        return 2
    corebpf = str(Path(sys.executable).with_name("corebpf"))
    cache_home = tempfile.mkdtemp(prefix="corebpf-bench-")
    warm_env = dict(os.environ, XDG_CACHE_HOME=cache_home)
    anchor = [bpftool, "feature", "probe", "kernel"]
    cold = [corebpf, "doctor", "--json"]
    warm = [corebpf, "doctor", "--json", "--cache"]
    for cmd in (anchor, cold, warm):  # warm up page cache and the disk cache
        timed(cmd, warm_env)
    times: dict[str, list[float]] = {"bpftool": [], "cold": [], "warm": []}
    for _ in range(args.runs):
        times["bpftool"].append(timed(anchor))
        times["cold"].append(timed(cold))
        times["warm"].append(timed(warm, warm_env))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"runs: {args.runs} each, medians (min..max)")
    print(f"bpftool feature probe kernel : {med['bpftool'] * 1000:7.1f} ms "
          f"({min(times['bpftool']) * 1000:.0f}..{max(times['bpftool']) * 1000:.0f})")
    print(f"corebpf doctor --json (cold) : {med['cold'] * 1000:7.1f} ms "
          f"({min(times['cold']) * 1000:.0f}..{max(times['cold']) * 1000:.0f})")
    print(f"corebpf doctor --json --cache: {med['warm'] * 1000:7.1f} ms "
          f"({min(times['warm']) * 1000:.0f}..{max(times['warm']) * 1000:.0f})")
    ratio = med["cold"] / med["bpftool"]
    print(f"ratio cold/bpftool: {ratio:.2f}x (goal <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    print(f"ratio warm/bpftool: {med['warm'] / med['bpftool']:.2f}x")
    shutil.rmtree(cache_home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
