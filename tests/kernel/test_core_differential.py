"""CO-RE differential test: corebpf's engine against libbpf (bpftool 7.1's libbpf 1.1) on this kernel.

For every corpus object with CO-RE relocations, ``bpftool -d prog loadall`` prints libbpf's decisions: the local
spec of each relocation, the candidate it chose, and how it patched the instruction (new immediate,
offset, load size, or poison). corebpf relocates the same programs against the same vmlinux BTF;
every relocation must give the same spec texts, the same decision and the same instruction bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from corebpf.btf.core import POISON_IMM, CoreRelocator, Resolution, TargetSet
from corebpf.btf.ext import BTFExt

from corpus_util import skip_if_kernel_too_old
from kernel_rules import running_kernel

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
CORE_OBJECTS = sorted(CORPUS.glob("core_*.bpf.o"))


def _has_core_relos(obj: Path) -> bool:
    return any(BTFExt.from_elf(obj)[1].core_relos.values())


#: every corpus object with CO-RE relocations (the core_* ones and others that read kernel structs)
OBJECTS_WITH_CORE = [o for o in sorted(CORPUS.glob("*.bpf.o")) if _has_core_relos(o)]
BPFFS = "/sys/fs/bpf"

_SLOT = struct.Struct("<BBhi")


@dataclass
class LibbpfRelo:
    """What libbpf's debug log says about one relocation."""

    local: str = ""
    target: str = ""
    patches: list[tuple[str, int, int]] = field(default_factory=list)  # (what, old, new)
    poisoned: list[int] = field(default_factory=list)  # instruction indices
    insn: int = -1


_LINE = re.compile(r"^libbpf: prog '([^']+)': relo #(\d+): (.*)$")
_PATCH = re.compile(r"patched insn #(\d+) \((ALU/ALU64|LDX/ST/STX|LDIMM64)\) (imm64|imm|off|mem_sz) (\d+) -> (\d+)")
_POISON = re.compile(r"substituting insn #(\d+) w/ invalid insn")


def _libbpf_decisions(obj: Path) -> dict[tuple[str, int], LibbpfRelo]:
    """Load ``obj`` with ``bpftool -d`` and parse libbpf's CO-RE debug lines."""
    if not os.path.ismount(BPFFS):
        subprocess.run(["mount", "-t", "bpf", "bpf", BPFFS], check=True, capture_output=True)
    pin_dir = f"{BPFFS}/corebpf_core_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        res = subprocess.run(["bpftool", "-d", "prog", "loadall", str(obj), pin_dir], capture_output=True, text=True)
    finally:
        if os.path.isdir(pin_dir):
            for name in os.listdir(pin_dir):
                os.unlink(f"{pin_dir}/{name}")
            os.rmdir(pin_dir)
    out: dict[tuple[str, int], LibbpfRelo] = {}
    for line in res.stderr.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        rec = out.setdefault((m.group(1), int(m.group(2))), LibbpfRelo())
        text = m.group(3)
        if text.startswith("<"):
            rec.local = text
        elif text.startswith("matching candidate #") and not rec.target:
            rec.target = text.split(" ", 3)[3]
        elif (p := _PATCH.search(text)) is not None:
            rec.insn = int(p.group(1))
            rec.patches.append((p.group(3), int(p.group(4)), int(p.group(5))))
        elif (p := _POISON.search(text)) is not None:
            rec.poisoned.append(int(p.group(1)))
    return out


def _programs(obj: Path) -> list[tuple[str, str, int, bytes]]:
    """(section, program name, byte offset in the section, instructions) of every program."""
    out = []
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        for sym in symtab.iter_symbols():
            if sym["st_info"]["type"] != "STT_FUNC" or not sym["st_size"]:
                continue
            sec = elf.get_section(sym["st_shndx"])
            data = sec.data()[sym["st_value"]:sym["st_value"] + sym["st_size"]]
            out.append((sec.name, sym.name, sym["st_value"], data))
    return out


def _corebpf_decisions(obj: Path, targets: TargetSet) -> dict[tuple[str, int], tuple[Resolution, bytes, bytes]]:
    btf, ext = BTFExt.from_elf(obj)
    core = CoreRelocator(btf, targets)
    out = {}
    for sec, name, off, data in sorted(_programs(obj), key=lambda p: (p[0], p[2])):
        insns = bytearray(data)
        for r in core.relocate(insns, ext.core_relos.get(sec, []), prog_name=name, section_offset=off):
            out[(name, r.index)] = (r, data, bytes(insns))
    return out


def _expected_bytes(before: bytes, lib: LibbpfRelo) -> bytes:
    """The program after libbpf's patch of one relocation, rebuilt from the original and its debug log."""
    buf = bytearray(before)
    for idx in lib.poisoned:
        _SLOT.pack_into(buf, idx * 8, 0x85, 0, 0, POISON_IMM)
    pos = lib.insn * 8
    for what, _old, new in lib.patches:
        code, regs, off, imm = _SLOT.unpack_from(buf, pos)
        if what == "imm":
            imm = new & 0xFFFFFFFF
            imm = imm - (1 << 32) if imm >> 31 else imm
        elif what == "off":
            off = new
        elif what == "mem_sz":
            code = (code & 0xE7) | {8: 0x18, 4: 0x00, 2: 0x08, 1: 0x10}[new]
        elif what == "imm64":
            lo, hi = new & 0xFFFFFFFF, new >> 32
            _SLOT.pack_into(buf, pos + 8, *_SLOT.unpack_from(buf, pos + 8)[:3],
                            hi - (1 << 32) if hi >> 31 else hi)
            imm = lo - (1 << 32) if lo >> 31 else lo
        _SLOT.pack_into(buf, pos, code, regs, off, imm)
    return bytes(buf)


@pytest.fixture(scope="module")
def vmlinux_targets() -> TargetSet:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("this kernel has no BTF (/sys/kernel/btf/vmlinux): CONFIG_DEBUG_INFO_BTF is off")
    return TargetSet.vmlinux()


def test_corpus_has_core_objects():
    assert len(CORE_OBJECTS) >= 8


@pytest.mark.parametrize("obj", OBJECTS_WITH_CORE, ids=lambda p: p.name)
def test_same_relocations_as_libbpf(obj: Path, vmlinux_targets: TargetSet):
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (apt-get install bpftool): no libbpf oracle")
    lib = _libbpf_decisions(obj)
    ours = _corebpf_decisions(obj, vmlinux_targets)
    if not lib:
        # libbpf resolves externs (kfuncs...) before CO-RE: an object with a program this kernel is
        # too old for may stop there (the matrix rule); on any other kernel this is a failure
        skip_if_kernel_too_old(obj, any_program=True)
    assert lib, f"bpftool printed no CO-RE relocations for {obj.name}"
    assert sorted(ours) == sorted(lib), "not the same set of relocations"
    for key, (res, before, after) in ours.items():
        want = lib[key]
        assert res.local == want.local, key
        assert (res.target_spec or "") == want.target, key
        assert res.poisoned == bool(want.poisoned), (key, res, want)
        if not res.poisoned:
            assert want.insn == res.insn_index, key
            assert res.new_val == want.patches[0][2], (key, res, want)
        pos = res.insn_index * 8
        end = pos + (16 if before[pos] == 0x18 else 8)  # a ld_imm64 has two slots
        assert after[pos:end] == _expected_bytes(before, want)[pos:end], (key, res, want)


def test_poisoned_relocations_are_explained(vmlinux_targets: TargetSet):
    """The flavour branch the kernel lacks is poisoned, dead, and explained like libbpf would.

    Linux 5.14 renamed ``task_struct::state`` to ``__state`` (commit 2f064a59a11f, "sched: Change
    task_struct::state"): from 5.14 on the ``___old`` flavour (``state``) is the one poisoned, before
    it the ``___new`` one (``__state``)."""
    from corebpf.analysis.kernel_versions import KernelVersion

    if running_kernel() < KernelVersion(5, 14):
        lacking = "task_struct___new.__state"
    else:
        lacking = "task_struct___old.state"
    ours = _corebpf_decisions(CORPUS / "core_flavors.bpf.o", vmlinux_targets)
    poisoned = [r for r, _, _ in ours.values() if r.poisoned]
    assert poisoned and all(lacking in r.spec for r in poisoned), (lacking, poisoned)
    r = poisoned[0]
    assert r.explanation.startswith("failed to resolve CO-RE relocation <byte_off> [")
    assert f"struct {lacking}" in r.explanation


def _rewrite_kind(obj: Path, dest: Path, old: int, new: int) -> int:
    """Copy ``obj`` to ``dest`` with every CO-RE record of kind ``old`` turned into ``new`` (clang 14
    cannot emit TYPE_MATCHES); returns how many records changed."""
    data = bytearray(obj.read_bytes())
    with open(obj, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".BTF.ext")
        base = sec["sh_offset"]
    hdr_len = struct.unpack_from("<I", data, base + 4)[0]
    relo_off, relo_len = struct.unpack_from("<II", data, base + 24)
    pos = base + hdr_len + relo_off
    end = pos + relo_len
    rec_size = struct.unpack_from("<I", data, pos)[0]
    pos += 4
    changed = 0
    while pos < end:
        _name, count = struct.unpack_from("<II", data, pos)
        pos += 8
        for _ in range(count):
            if struct.unpack_from("<I", data, pos + 12)[0] == old:
                struct.pack_into("<I", data, pos + 12, new)
                changed += 1
            pos += rec_size
    dest.write_bytes(bytes(data))
    return changed


def test_type_matches_same_as_libbpf(tmp_path: Path, vmlinux_targets: TargetSet):
    """TYPE_MATCHES (kind 12) on kernel types, flavours that match and flavours that do not."""
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (apt-get install bpftool): no libbpf oracle")
    obj = tmp_path / "core_types_matches.bpf.o"
    assert _rewrite_kind(CORPUS / "core_types.bpf.o", obj, 8, 12) >= 6
    lib = _libbpf_decisions(obj)
    ours = _corebpf_decisions(obj, vmlinux_targets)
    matches = {key: r for key, (r, _, _) in ours.items() if r.kind.short == "type_matches"}
    assert len(matches) >= 6
    # clang names integers "unsigned long long", the kernel's BTF (from gcc's DWARF) "long long unsigned
    # int": TYPE_MATCHES compares names, so types holding such integers do not match (libbpf agrees)
    assert {r.spec: r.new_val for r in matches.values()} == {
        "struct task_struct": 0, "struct corebpf_not_in_kernel": 0, "union bpf_attr": 0, "typedef u64": 0,
        "typedef corebpf_missing_t": 0, "struct task_struct___subset": 1, "struct task_struct___gone": 0,
        "struct file___narrow": 0, "enum pid_type": 1}
    for key, (res, before, after) in ours.items():
        want = lib[key]
        assert res.local == want.local, key
        assert (res.target_spec or "") == want.target, key
        assert res.new_val == want.patches[0][2], (key, res, want)
