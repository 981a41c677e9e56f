"""Benchmark: full C dump of the running kernel's BTF (vmlinux.h), corebpf vs bpftool.

``corebpf btf dump --format c`` against ``bpftool btf dump file /sys/kernel/btf/vmlinux format c``,
each run as a child process writing to /dev/null, interleaved, measured in this run: wall time,
CPU time (user + system) and peak RSS of the child (through GNU time, see :func:`measure`).
corebpf is measured twice: *cold* (``--no-cache``: parse and generate everything) and *warm* (the
on-disk cache of full dumps holds this BTF's header, as on the second run on a node). Figures are
medians over rounds. Goal: corebpf / bpftool <= 2x wall time and <= 2x peak RSS.

    .venv/bin/python bench/btf_dump.py [--rounds 7] [--btf /sys/kernel/btf/vmlinux]
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
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
GOAL = 2.0


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float   # seconds, user + system
    rss: int     # KiB


GNU_TIME = "/usr/bin/time"


def measure(cmd: list[str], env: dict[str, str]) -> Run:
    """Run ``cmd`` with stdout to /dev/null; its wall time, CPU time and peak RSS.

    Peak RSS comes from GNU time when installed: a child forked from this (large) Python process
    inherits its RSS until it execs, which ``wait4``'s ``ru_maxrss`` would count; GNU time is a
    small parent. Without it, ``wait4`` is used and small peaks read as this process's size.
    """
    with tempfile.NamedTemporaryFile("r", prefix="corebpf-bench-time-") as stats, open(os.devnull, "wb") as devnull:
        gnu_time = os.path.exists(GNU_TIME)
        full = [GNU_TIME, "-f", "%e %U %S %M", "-o", stats.name, *cmd] if gnu_time else cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=devnull, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        code = os.waitstatus_to_exitcode(status)
        if code:
            sys.exit(f"{' '.join(cmd)} failed ({code}): {err.strip()}")
        if gnu_time:
            _, user, system, rss = stats.read().split()[-4:]
            return Run(wall, float(user) + float(system), int(rss))
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def corebpf_cmd() -> list[str]:
    exe = shutil.which("corebpf", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-c", "from corebpf.cli.main import main; main()"]


def check_outputs(btf: str, bpftool: str, env: dict[str, str]) -> None:
    """Outside the timing: both dumps define the same structs (text equality is a kernel test)."""
    ours = subprocess.run(corebpf_cmd() + ["btf", "dump", btf, "--no-cache"], capture_output=True, text=True,
                          env=env, check=True).stdout
    theirs = subprocess.run([bpftool, "btf", "dump", "file", btf, "format", "c"], capture_output=True, text=True,
                            check=True).stdout

    def defs(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith(("struct ", "union ", "enum ", "typedef "))]

    if defs(ours) != defs(theirs):
        sys.exit("corebpf and bpftool define different types: the benchmark would compare different work")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--btf", default="/sys/kernel/btf/vmlinux")
    args = parser.parse_args(argv)
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        sys.exit("bpftool is not installed (apt-get install bpftool): it is the anchor")
    with tempfile.TemporaryDirectory(prefix="corebpf-bench-") as cache:
        env = dict(os.environ, COREBPF_CACHE_DIR=cache)
        # an installed corebpf runs from compiled bytecode: without .pyc files every import would be
        # compiled again in every run, which is not what is measured here
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        check_outputs(args.btf, bpftool, env)
        anchor = [bpftool, "btf", "dump", "file", args.btf, "format", "c"]
        cold = corebpf_cmd() + ["btf", "dump", args.btf, "--no-cache"]
        warm = corebpf_cmd() + ["btf", "dump", args.btf]
        measure(warm, env)  # fills the cache, and warms the page cache for everyone
        measure(anchor, env)
        runs: dict[str, list[Run]] = {"bpftool": [], "corebpf cold": [], "corebpf warm": []}
        for _ in range(args.rounds):  # interleaved, so load changes hit every side alike
            runs["bpftool"].append(measure(anchor, env))
            runs["corebpf cold"].append(measure(cold, env))
            runs["corebpf warm"].append(measure(warm, env))

    def med(name: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs[name])

    base_wall, base_cpu, base_rss = med("bpftool", "wall"), med("bpftool", "cpu"), med("bpftool", "rss")
    print(f"btf dump benchmark: {args.btf} as C, median of {args.rounds} rounds (child processes, stdout to /dev/null)")
    print(f"{'':<14} {'wall':>9} {'ratio':>7} {'cpu':>9} {'ratio':>7} {'peak RSS':>10} {'ratio':>7}")
    verdicts = {}
    for name in runs:
        wall, cpu, rss = med(name, "wall"), med(name, "cpu"), med(name, "rss")
        print(f"{name:<14} {wall * 1e3:>6.0f} ms {wall / base_wall:>6.2f}x {cpu * 1e3:>6.0f} ms "
              f"{cpu / base_cpu:>6.2f}x {rss / 1024:>7.1f} MiB {rss / base_rss:>6.2f}x")
        verdicts[name] = (wall / base_wall, rss / base_rss)
    ok = True
    for name in ("corebpf cold", "corebpf warm"):
        wall_ratio, rss_ratio = verdicts[name]
        ok = ok and wall_ratio <= GOAL and rss_ratio <= GOAL

        def verdict(ratio: float) -> str:
            return "met" if ratio <= GOAL else "NOT met"

        print(f"{name}: {wall_ratio:.2f}x wall ({verdict(wall_ratio)}), {rss_ratio:.2f}x RSS "
              f"({verdict(rss_ratio)}); goal <= {GOAL}x for each")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
