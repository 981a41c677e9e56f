"""Acceptance: every corpus object loads with corebpf, and every program's kernel tag equals the tag of
the same program loaded from the same file by ``bpftool prog loadall`` (libbpf 1.1).

Where bpftool cannot serve as the oracle, a small libbpf C loader (``bench/c/load_object.c --tags``,
the same libbpf) does: objects with programs this kernel refuses (the others are compared, with the
refused ones' autoload off on both sides) and optional ``SEC("?...")`` programs (bpftool 7.1 fails
pinning the programs libbpf skipped). Refusals assert their reason: BPF trampolines under lockdown
(fentry/fexit/LSM), typed ksym variables without CONFIG_KALLSYMS_ALL or without per-CPU variables in
the kernel's BTF, a deliberately unverifiable program, and programs that need a newer kernel than
this one (the matrix rule: their minimum release from corebpf's analysis and the kernel-versions
dataset, ``corpus_util.too_new_programs``). Legacy ``maps`` sections are loaded by corebpf only
(libbpf 1.0+ dropped them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from corebpf._sys._generated import AttachType, ProgType
from corebpf.elf import ObjectSpec
from corebpf.errors import BPFPermissionError, VerifierError
from corebpf.loader import load
from corebpf.loader.externs import ExternError
from corebpf.programs import Program

from corpus_util import (
    BPFFS, Unloadable, bpftool, corpus_objects, ensure_bpffs, loaded_object, too_new_programs, too_new_reason,
)

OBJECTS = corpus_objects()
ROOT = Path(__file__).resolve().parent.parent.parent
# maps pinned by name by libbpf (under /sys/fs/bpf by default) when the oracles load these objects
ORACLE_PINS = {"obj_pinning.bpf.o": ["corebpf_pinned_counts"]}
_TRAMPOLINES = (AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT, AttachType.MODIFY_RETURN, AttachType.LSM_MAC,
                AttachType.LSM_CGROUP)


def test_corpus_has_at_least_25_objects():
    assert len(OBJECTS) >= 25, [p.name for p in OBJECTS]


@pytest.fixture
def pin_root():
    ensure_bpffs()
    path = f"{BPFFS}/corebpf_loader_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    os.mkdir(path)
    yield path
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


@pytest.fixture(scope="module")
def libbpf_tags(tmp_path_factory):
    """Tags of an object's programs as libbpf loads them: ``libbpf_tags(path, skip=[...])``."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: no libbpf C oracle")
    binary = tmp_path_factory.mktemp("oracle") / "load_object"
    res = subprocess.run([gcc, "-O2", "-o", str(binary), str(ROOT / "bench" / "c" / "load_object.c"), "-lbpf"],
                         capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot build the libbpf oracle (libbpf-dev missing?): {res.stderr.strip()[:200]}")

    def run(obj: Path, skip: list[str]) -> dict[str, str]:
        try:
            out = subprocess.run([str(binary), str(obj), "--tags", *skip], capture_output=True, text=True)
        finally:
            _remove_oracle_pins(obj)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    return run


def _remove_oracle_pins(obj: Path) -> None:
    for pin in ORACLE_PINS.get(obj.name, []):
        try:
            os.unlink(f"{BPFFS}/{pin}")
        except FileNotFoundError:
            pass


def _bpftool_tags(obj: Path) -> dict[str, str]:
    """{program name: tag} of ``obj`` loaded by ``bpftool prog loadall`` (raises Unloadable)."""
    try:
        with loaded_object(obj) as progs:
            tags = {}
            for name, prog_id in progs.items():
                with Program.from_id(prog_id) as p:
                    tags[name] = p.tag
            return tags
    finally:
        _remove_oracle_pins(obj)


def _refused(obj: Path, exc: BaseException) -> tuple[list[str], str] | None:
    """(programs this kernel refuses on purpose, why) -- None when ``exc`` is a real failure."""
    msg = str(exc)
    spec = ObjectSpec.from_file(obj)
    if isinstance(exc, BPFPermissionError):
        tramp = [n for n, p in spec.programs.items() if p.expected_attach_type in _TRAMPOLINES or p.type == ProgType.EXT]
        if tramp:
            assert "trampoline" in msg and "kernel policy" in msg, msg
            return tramp, "this kernel refuses BPF trampolines (fentry/fexit/LSM): kernel policy"
    if obj.name == "obj_ksym_var.bpf.o" and isinstance(exc, VerifierError):
        assert "KALLSYMS_ALL" in msg and "runqueues" in msg, msg
        return ["ksym_var_read"], "typed ksym variables need CONFIG_KALLSYMS_ALL, which this kernel lacks"
    if obj.name == "obj_ksym_var.bpf.o" and isinstance(exc, ExternError) and not _btf_has_percpu_vars():
        # Per-CPU variables are in vmlinux BTF since 5.10 (pahole >= 1.18), but kernels built with pahole
        # 1.18-1.21 leave them out on purpose ("kbuild: skip per-CPU BTF generation for pahole
        # v1.18-v1.21", 5.14, backported to 5.10.y; Debian 11 builds with pahole 1.20): a property of
        # the kernel's build, not of its version. Only when the whole class is absent is this expected.
        assert "runqueues" in msg, msg
        return ["ksym_var_read"], "this kernel's BTF has no per-CPU variables (built with pahole 1.18-1.21)"
    if obj.name == "obj_verifier_fail.bpf.o" and isinstance(exc, VerifierError):
        assert "vf_bad" in msg and "map_value_or_null" in msg, msg
        return ["vf_bad"], "vf_bad is rejected by the verifier on purpose"
    new = too_new_programs(obj)
    if new:
        # the rest must then load (the retry raises otherwise): only these may be what failed
        return list(new), too_new_reason(obj, new, name_object=False)
    return None


def _btf_has_percpu_vars() -> bool:
    """Whether the running kernel's BTF describes per-CPU variables (a ``.data..percpu`` DATASEC)."""
    from corebpf.btf import BTF

    return bool(BTF.vmlinux().find_all(".data..percpu"))


def _our_tags(obj: Path, pin_root: str, programs: list[str] | None = None) -> dict[str, str]:
    with load(obj, pin_root=pin_root, programs=programs) as loaded:
        for name, p in loaded.programs.items():
            assert p.id > 0 and len(p.tag) == 16 and p.section == loaded.spec.programs[name].section
        return {name: p.tag for name, p in loaded.programs.items()}


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda p: p.name)
def test_program_tags_equal_libbpf(obj: Path, pin_root: str, libbpf_tags):
    skip: list[str] = []
    try:
        ours = _our_tags(obj, pin_root)
    except Exception as exc:  # noqa: BLE001 - classified below
        refusal = _refused(obj, exc)
        if refusal is None:
            raise
        skip, reason = refusal
        spec = ObjectSpec.from_file(obj)
        rest = [n for n, p in spec.programs.items() if p.autoload and n not in skip]
        if not rest:
            pytest.skip(f"{obj.name}: tag comparison excluded: {reason}")
        ours = _our_tags(obj, pin_root, rest)
    assert ours, f"{obj.name}: no programs"
    if obj.name == "obj_legacy_maps.bpf.o":
        pytest.skip("libbpf 1.0+ refuses legacy 'maps' sections: corebpf loads it, no libbpf oracle")
    if skip or obj.name == "obj_optional.bpf.o" or bpftool() is None:
        # bpftool cannot load part of an object, nor pin what libbpf skipped: the C libbpf oracle can
        assert ours == libbpf_tags(obj, skip)
        return
    assert ours == _bpftool_tags(obj)


def test_the_two_oracles_agree(libbpf_tags):
    """bpftool loadall and the C libbpf loader give the same tags (so either may be the reference)."""
    if bpftool() is None:
        pytest.skip("bpftool is not installed")
    compared = []
    for name in ("obj_bpf2bpf.bpf.o", "obj_globals.bpf.o", "core_fields.bpf.o"):
        obj = next(p for p in OBJECTS if p.name == name)
        try:
            theirs = _bpftool_tags(obj)
        except Unloadable:
            if not too_new_programs(obj):
                raise
            continue  # bpftool loads whole objects: one program needs a newer kernel (the rule)
        assert theirs == libbpf_tags(obj, [])
        compared.append(name)
    assert compared, "no object loaded with bpftool"


def test_refused_programs_name_the_cause():
    """fentry/LSM here: the error names trampolines and lockdown (or the object loads when allowed)."""
    for path in (p for p in OBJECTS if p.name in ("obj_fentry.bpf.o", "obj_lsm.bpf.o")):
        try:
            with load(path):
                pass
        except BPFPermissionError as exc:
            assert exc.errno == 1
            assert "trampoline" in str(exc) and "lockdown" in str(exc)
