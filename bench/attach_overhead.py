#!/usr/bin/env python3
"""The kernel's samples/bpf/test_overhead table, reproduced with corebpf's own objects.

getpgid() rate in a tight C loop (raw syscall(SYS_getpgid), so no libc caching and little noise) with
nothing attached, then with a do-almost-nothing program (one atomic add on a global counter, from
tests/corpus/links_overhead.bpf.o) attached as a tracepoint (syscalls/sys_enter_getpgid), raw tracepoint
(sys_enter), tp_btf (sys_enter), kprobe (ksyscall getpgid) and fentry (__x64_sys_getpgid). Methods this
kernel refuses are reported 'unavailable here' with the reason.

Each measurement is by default the loop's own CPU time (CLOCK_THREAD_CPUTIME_ID: the syscall and the BPF
program run in the caller's context, so both are counted, while time spent preempted by other processes is
not: the figures hold on a busy machine); ``--clock wall`` uses elapsed time instead. Rounds alternate between the baseline and each method, in a shuffled
order per round; the figure per method is the median of its rounds against the median baseline of the
same run (the best-round overhead is shown next to it). Every attached program's counter is checked to
have moved by at least the number of calls (so a number is never reported for a program that did not run).

    .venv/bin/python bench/attach_overhead.py [--calls N] [--rounds R] [--clock cpu|wall] [--json] [--python]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import corebpf  # noqa: E402
from corebpf import features, links  # noqa: E402

OBJECT = ROOT / "tests" / "corpus" / "links_overhead.bpf.o"

LOOP_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static long long now(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    long long wall = now(CLOCK_MONOTONIC), cpu = now(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < n; i++)
        syscall(SYS_getpgid, 0);
    printf("%lld %lld\n", now(CLOCK_MONOTONIC) - wall, now(CLOCK_THREAD_CPUTIME_ID) - cpu);
    return 0;
}
"""

# method -> (program name in the object, feature probe deciding whether the program can load)
METHODS: dict[str, tuple[str, Optional[str]]] = {
    "tracepoint": ("tp_getpgid", "tracepoint"),
    "raw_tp": ("raw_sys_enter", "raw_tp"),
    "tp_btf": ("btf_sys_enter", "tp_btf"),
    "kprobe": ("kprobe_getpgid", None),
    "fentry": ("fentry_getpgid", "fentry"),
}
COUNTER = {"tp_getpgid": "tp_hits", "raw_sys_enter": "raw_hits", "btf_sys_enter": "btf_hits",
           "kprobe_getpgid": "kprobe_hits", "fentry_getpgid": "fentry_hits"}


def build_loop(workdir: str) -> str:
    """Compile the getpgid loop into ``workdir``; returns the executable."""
    src = os.path.join(workdir, "getpgid_loop.c")
    exe = os.path.join(workdir, "getpgid_loop")
    with open(src, "w") as f:
        f.write(LOOP_C)
    subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
    return exe


def c_runner(exe: str, calls: int, clock: str) -> Callable[[], float]:
    """A measurement: run the C loop once, return calls per second of ``clock`` (timed inside the binary)."""
    def run() -> float:
        wall, cpu = subprocess.run([exe, str(calls)], check=True, capture_output=True, text=True).stdout.split()
        return calls / (int(cpu if clock == "cpu" else wall) / 1e9)
    return run


def py_runner(calls: int, clock: str) -> Callable[[], float]:
    """A measurement: ``os.getpgid`` in a Python loop, return calls per second of ``clock``."""
    timer = time.thread_time if clock == "cpu" else time.perf_counter

    def run() -> float:
        getpgid = os.getpgid
        t = timer()
        for _ in range(calls):
            getpgid(0)
        return calls / (timer() - t)
    return run


def syscall_tracers(ours: frozenset[int] = frozenset()) -> list[str]:
    """BPF links of other processes on syscall tracepoints. Any of them switches every task to the slow
    syscall path, so the 'none' baseline then already pays the tracepoint machinery and the overheads
    below only show the programs' share: the table says so."""
    from corebpf._sys import ops
    from corebpf.inventory.attach import decode_attach
    from corebpf.links.link import Link

    found = []
    for link_id in ops.iter_ids("link"):
        try:
            with Link.from_id(link_id) as link:
                info = link.info
                if info.prog_id in ours:
                    continue  # our own link, still being released
                target = decode_attach(link.fileno(), info).target
        except (corebpf.CoreBPFError, OSError):
            continue  # gone meanwhile
        if "sys_enter" in target or "sys_exit" in target or "syscalls" in target:
            found.append(f"link {link_id}: {target}")
    return found


GETPGID_NR = {"x86_64": 121, "aarch64": 155, "riscv64": 155, "s390x": 132, "ppc64le": 132}


def load_object() -> tuple[Any, dict[str, str]]:
    """Load every program of the object this kernel accepts; returns (object, {method: why not})."""
    spec = corebpf.ObjectSpec.from_file(OBJECT)
    spec.variables["getpgid_nr"] = GETPGID_NR[os.uname().machine]  # sys_enter programs count getpgid only
    missing: dict[str, str] = {}
    for method, (prog, feature) in METHODS.items():
        if feature is not None:
            r = features.attach_method(feature)
            if not r.supported:
                spec.programs[prog].autoload = False
                missing[method] = f"{r.errno_name or ''} {r.reason}".strip()
    return spec.load(), missing


def measure(calls: int, rounds: int, use_python: bool, clock: str = "cpu") -> dict[str, Any]:
    """Run the whole table: baseline and each attach method, alternating, ``rounds`` times."""
    workdir = tempfile.mkdtemp(prefix="corebpf-bench-")
    try:
        use_python = use_python or not shutil.which("gcc")
        runner = py_runner(calls, clock) if use_python else c_runner(build_loop(workdir), calls, clock)
        obj, missing = load_object()
        with obj:
            attachable: dict[str, Any] = {}
            for method, (prog, _) in METHODS.items():
                if method in missing:
                    continue
                try:
                    with links.attach_program(obj.programs[prog], obj.spec.programs[prog]) as link:
                        attachable[method] = link.method
                except links.AttachError as exc:
                    missing[method] = "; ".join(f"{a.method}: {a.reason}" for a in exc.attempts)
            runner()  # warm up (page cache, CPU frequency)
            ours = frozenset(p.id for p in obj.programs.values())
            tracers = syscall_tracers(ours)
            base: list[float] = []
            rates: dict[str, list[float]] = {m: [] for m in attachable}
            checked: dict[str, bool] = {m: True for m in attachable}
            order = list(attachable)
            for r in range(rounds):
                base.append(runner())
                random.Random(r).shuffle(order)  # no method always runs right after the baseline
                for method in order:
                    prog = METHODS[method][0]
                    counter = COUNTER[prog]
                    with links.attach_program(obj.programs[prog], obj.spec.programs[prog]):
                        before = obj.variables[counter]
                        rates[method].append(runner())
                        checked[method] &= obj.variables[counter] - before >= calls
            base_rate, base_best = statistics.median(base), max(base)
            rows = [{"method": "none", "calls_per_s": base_rate, "ns_per_call": 1e9 / base_rate, "overhead_pct": 0.0,
                     "overhead_pct_best": 0.0, "added_ns": 0.0, "attach": "", "ran": True}]
            for method in METHODS:
                if method in attachable:
                    r = statistics.median(rates[method])
                    rows.append({"method": method, "calls_per_s": r, "ns_per_call": 1e9 / r,
                                 "overhead_pct": (base_rate / r - 1) * 100,
                                 "overhead_pct_best": (base_best / max(rates[method]) - 1) * 100,
                                 "added_ns": 1e9 / r - 1e9 / base_rate,
                                 "attach": attachable[method], "ran": checked[method]})
                else:
                    rows.append({"method": method, "unavailable": missing.get(method, "not attached")})
        return {"loop": "python os.getpgid" if use_python else "C syscall(SYS_getpgid)", "calls": calls, "clock": clock,
                "rounds": rounds, "kernel": os.uname().release, "cpus": os.cpu_count(),
                "loadavg": os.getloadavg()[0], "rows": rows,
                "other_syscall_tracers": sorted(set(tracers) | set(syscall_tracers(ours)))}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(result: dict[str, Any]) -> None:
    """The human table."""
    print(f"getpgid overhead per attach method  (Linux {result['kernel']}, {result['cpus']} CPUs, "
          f"{result['loop']}, {result['clock']} time, {result['calls']} calls x {result['rounds']} rounds, median; "
          f"load average {result['loadavg']:.2f})")
    if result["other_syscall_tracers"]:
        print(f"WARNING: {len(result['other_syscall_tracers'])} other BPF link(s) trace syscalls during the run "
              f"({'; '.join(result['other_syscall_tracers'][:3])}): every syscall already takes the slow path, so "
              "the baseline is inflated and the overheads are understated")
    print(f"{'method':<11} {'calls/s':>12} {'ns/call':>9} {'overhead':>9} {'+ns':>7} {'best':>8}  attached via")
    for row in result["rows"]:
        if "unavailable" in row:
            print(f"{row['method']:<11} {'unavailable here':>40}  ({row['unavailable'][:200]})")
            continue
        flag = "" if row["ran"] else "  (COUNTER DID NOT MOVE: program did not run)"
        print(f"{row['method']:<11} {row['calls_per_s']:>12,.0f} {row['ns_per_call']:>9.1f} "
              f"{row['overhead_pct']:>8.1f}% {row['added_ns']:>7.1f} {row['overhead_pct_best']:>7.1f}%  "
              f"{row['attach']}{flag}")


def main() -> int:
    """Command line entry; exit 1 when an attached program did not run."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200_000, help="getpgid calls per measurement")
    ap.add_argument("--rounds", type=int, default=25, help="alternating rounds (median and best reported)")
    ap.add_argument("--python", action="store_true", help="loop in Python (os.getpgid) instead of C")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu: the loop's own CPU time (robust on a busy machine; misses work the kernel defers to "
                         "interrupts); wall: elapsed time (includes it, but also other processes' interference)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args()
    result = measure(args.calls, args.rounds, args.python, args.clock)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0 if all(r.get("ran", True) for r in result["rows"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
