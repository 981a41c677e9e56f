"""Helpers for tests over the compiled corpus (tests/corpus/*.bpf.o): ELF program sections,
bpftool, loading every program of an object with ``bpftool prog loadall`` into a private
bpffs directory that is removed afterwards, and which programs need a newer kernel than this one.

What a corpus program needs is not listed by hand: corebpf's own analysis of the object
(``corebpf.analysis.requirements``: helpers, kfuncs, map and program types, ISA extensions...)
against the kernel-versions dataset gives each program's minimum release, and the matrix rule of
``kernel_rules`` applies to it: a program whose minimum release is newer than the running kernel is
left out (skip with the requirement that sets it); every other one must load."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

from functools import lru_cache

from elftools.elf.elffile import ELFFile

import kernel_rules
from corebpf._sys import ops, uapi
from corebpf.analysis.kernel_versions import Requirement

CORPUS_DIR = Path(__file__).resolve().parent.parent / "corpus"
BPFFS = "/sys/fs/bpf"
SHF_EXECINSTR = 0x4


# the asm corpus: these must load on this kernel with bpftool. Objects added for other purposes
# (some deliberately fail: fentry/LSM under lockdown, ksym variables without KALLSYMS_ALL, legacy
# "maps" sections libbpf 1.x refuses, verifier failures) are skipped with bpftool's reason.
MUST_LOAD = frozenset({
    "atomics.bpf.o", "cgroup_skb.bpf.o", "globals.bpf.o", "iter.bpf.o", "kfunc.bpf.o", "loops.bpf.o",
    "perf_event.bpf.o", "raw_tp.bpf.o", "socket_filter.bpf.o", "subprog.bpf.o", "tailcall.bpf.o", "tc.bpf.o",
    "tp_btf.bpf.o", "tracepoint.bpf.o", "xdp.bpf.o",
})


class Unloadable(RuntimeError):
    """bpftool could not load an object that is not required to load here."""


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    v = kernel_rules.running_kernel()
    return v.major, v.minor


@lru_cache(maxsize=None)
def _min_requirements(obj: str) -> dict[str, Requirement | None]:
    """Every program of ``obj`` (autoload or not) -> the requirement setting its minimum release."""
    from corebpf.analysis.requirements import analyze
    from corebpf.elf import ObjectSpec

    return {name: prog.min_requirement for name, prog in analyze(ObjectSpec.from_file(obj)).programs.items()}


def too_new_programs(obj: Path) -> dict[str, Requirement]:
    """Programs of ``obj`` that need a newer kernel than this one: name -> the requirement that sets
    their minimum release (the newest one they use)."""
    running = kernel_rules.running_kernel()
    return {name: req for name, req in _min_requirements(str(obj)).items()
            if req is not None and req.version is not None and running < req.version}


def too_new_reason(obj: Path, programs: dict[str, Requirement], *, name_object: bool = True) -> str:
    """``obj.bpf.o: prog needs Linux 6.2+ (kfunc bpf_rcu_read_lock), ...; this is 5.10.0-32-amd64``."""
    parts = [f"{name} needs Linux {req.version}+ ({req.label})" for name, req in sorted(programs.items())]
    text = f"{', '.join(parts)}; this is {os.uname().release}"
    return f"{obj.name}: {text}" if name_object else text


def skip_if_kernel_too_old(obj: Path, *, any_program: bool = False) -> None:
    """pytest.skip (with the requirement and its release) when ``obj``'s programs need a newer kernel
    than this one: all of them, or with ``any_program`` any of them (for oracles such as ``bpftool
    prog loadall`` that load whole objects or nothing)."""
    import pytest

    new = too_new_programs(obj)
    if not new:
        return
    if any_program or set(new) >= set(_min_requirements(str(obj))):
        pytest.skip(too_new_reason(obj, new))


def corpus_objects() -> list[Path]:
    """Every committed corpus object, sorted."""
    return sorted(CORPUS_DIR.glob("*.bpf.o"))


def program_sections(path: Path) -> dict[str, bytes]:
    """Executable (program) sections of an ELF object: name -> bytes."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s.data() for s in elf.iter_sections()
                if s["sh_flags"] & SHF_EXECINSTR and s["sh_size"] > 0}


def bpftool() -> str | None:
    return shutil.which("bpftool")


def bpftool_version() -> str:
    """``bpftool version``'s number, e.g. ``7.1.0``."""
    out = subprocess.run([bpftool() or "bpftool", "version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"v(\d+\.\d+\.\d+)", out)
    return match.group(1) if match else "0.0.0"


def bpftool_dump_xlated(prog_id: int, *extra: str) -> list[str]:
    """Lines of ``bpftool prog dump xlated id ID [extra...]``."""
    res = subprocess.run([bpftool() or "bpftool", "prog", "dump", "xlated", "id", str(prog_id), *extra],
                         capture_output=True, text=True, errors="replace")
    if res.returncode:
        raise RuntimeError(f"bpftool prog dump xlated id {prog_id} failed: {res.stderr.strip()}")
    return res.stdout.splitlines()


def ensure_bpffs() -> None:
    """Mount bpffs at /sys/fs/bpf unless something is mounted there already."""
    with open("/proc/mounts") as f:
        if any(line.split()[1:3] == [BPFFS, "bpf"] for line in f):
            return
    subprocess.run(["mount", "-t", "bpf", "bpf", BPFFS], check=True, capture_output=True)


@contextlib.contextmanager
def loaded_or_skip(obj: Path) -> Iterator[dict[str, int]]:
    """:func:`loaded_object`, skipping the test (with bpftool's reason) for unloadable objects."""
    import pytest

    with contextlib.ExitStack() as stack:
        try:
            progs = stack.enter_context(loaded_object(obj))
        except Unloadable as exc:
            pytest.skip(str(exc))
        yield progs


@contextlib.contextmanager
def loaded_object(obj: Path) -> Iterator[dict[str, int]]:
    """Load every program of ``obj`` with bpftool; yield {program name: program id}; unpin all.

    Raises :class:`Unloadable` when bpftool fails on an object outside :data:`MUST_LOAD`."""
    ensure_bpffs()
    pin_dir = f"{BPFFS}/corebpf_asm_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    res = subprocess.run([bpftool() or "bpftool", "prog", "loadall", str(obj), pin_dir],
                         capture_output=True, text=True)
    try:
        if res.returncode:
            if obj.name not in MUST_LOAD:
                reason = next((line for line in res.stderr.splitlines() if "load failed" in line or "Error" in line),
                              "see bpftool's output")
                raise Unloadable(f"bpftool cannot load {obj.name} here: {reason.strip()}")
            raise RuntimeError(f"bpftool prog loadall {obj.name} failed:\n{res.stderr[-3000:]}")
        progs: dict[str, int] = {}
        for name in sorted(os.listdir(pin_dir)):
            with ops.obj_get(f"{pin_dir}/{name}") as fd:
                info = uapi.ProgInfo()
                ops.obj_get_info_by_fd(fd, info)
                progs[name] = info.id
        yield progs
    finally:
        if os.path.isdir(pin_dir):
            for name in os.listdir(pin_dir):
                os.unlink(f"{pin_dir}/{name}")
            os.rmdir(pin_dir)
