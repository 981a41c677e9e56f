"""What an object needs from a kernel, per program, without any kernel access.

For each entry program (linked with the subprograms it reaches, as the loader would): program type,
expected attach type and target, helpers and kfuncs called (by name), maps referenced (and their
types, inner maps included), instruction-set extensions used (cpu v2/v3/v4 instructions, atomics,
may_goto, arena casts, bpf2bpf calls, callbacks), externs, CO-RE relocation kinds, and from those the
minimum kernel release with the requirement that sets it.

BTF kinds of the object's BTF are listed too, as *soft* requirements: the loader rewrites kinds an
older kernel lacks (libbpf's BTF sanitisation), so they never raise the minimum version.

    >>> from corebpf.analysis.requirements import analyze
    >>> reqs = analyze(ObjectSpec.from_file("prog.bpf.o"))
    >>> reqs.programs["handle_exec"].min_version, reqs.programs["handle_exec"].min_reason
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from .._sys._generated import MapType, ProgType
from ..asm.disasm import helper_name
from ..asm.opcodes import AtomicOp, InsnClass, JumpOp, Mode
from ..elf.specs import ExternKind, RelocKind
from .kernel_versions import KernelVersion, Requirement, lookup

if TYPE_CHECKING:  # pragma: no cover
    from ..elf.objectspec import ObjectSpec
    from ..elf.specs import MapSpec, ProgramSpec

__all__ = ["ProgramRequirements", "ObjectRequirements", "analyze", "analyze_program", "isa_features"]

_SLOT = struct.Struct("<BBhi")
_SLEEPABLE = 1 << 4


@dataclass
class ProgramRequirements:
    """Everything one entry program needs (its subprograms included).

    ``helpers``/``kfuncs``/``maps`` are sorted names; ``map_types`` maps each referenced map to its type
    name; ``isa`` the instruction-set features used; ``requirements`` every versioned requirement;
    ``min_version``/``min_reason`` the largest of them (None if nothing is versioned); ``optional``
    what the loader drops on kernels without it (an optional expected attach type).
    """

    name: str
    section: str
    prog_type: str
    attach_type: Optional[str]
    attach_to: str
    insn_count: int
    helpers: list[str] = field(default_factory=list)
    unknown_helpers: list[int] = field(default_factory=list)
    kfuncs: list[str] = field(default_factory=list)
    ksyms: list[str] = field(default_factory=list)
    kconfig: list[str] = field(default_factory=list)
    maps: list[str] = field(default_factory=list)
    map_types: dict[str, str] = field(default_factory=dict)
    subprograms: list[str] = field(default_factory=list)
    isa: list[str] = field(default_factory=list)
    core_kinds: list[str] = field(default_factory=list)
    sleepable: bool = False
    requirements: list[Requirement] = field(default_factory=list)
    optional: list[Requirement] = field(default_factory=list)

    @property
    def min_requirement(self) -> Optional[Requirement]:
        """The requirement with the highest version (first such in ``requirements`` order)."""
        best: Optional[Requirement] = None
        for r in self.requirements:
            if r.version is not None and (best is None or r.version > best.version):  # type: ignore[operator]
                best = r
        return best

    @property
    def min_version(self) -> Optional[KernelVersion]:
        """The oldest mainline release that has everything this program needs."""
        r = self.min_requirement
        return r.version if r is not None else None

    @property
    def min_reason(self) -> str:
        """Which requirement sets :attr:`min_version` (``"helper bpf_ringbuf_output (5.8)"``)."""
        r = self.min_requirement
        return f"{r.label} ({r.version})" if r is not None else ""

    def requirements_at_least(self, version: KernelVersion) -> list[Requirement]:
        """The requirements newer than ``version`` (what an older kernel would lack)."""
        return [r for r in self.requirements if r.version is not None and r.version > version]

    def as_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        return {
            "name": self.name, "section": self.section, "type": self.prog_type, "attach_type": self.attach_type,
            "attach_to": self.attach_to, "insns": self.insn_count, "helpers": self.helpers,
            "unknown_helpers": self.unknown_helpers, "kfuncs": self.kfuncs, "ksyms": self.ksyms,
            "kconfig": self.kconfig, "maps": self.maps, "map_types": self.map_types, "subprograms": self.subprograms,
            "isa": self.isa, "core_kinds": self.core_kinds, "sleepable": self.sleepable,
            "min_kernel": str(self.min_version) if self.min_version else None, "min_kernel_reason": self.min_reason,
            "requirements": [r.as_dict() for r in self.requirements],
            "optional": [r.as_dict() for r in self.optional],
        }


@dataclass
class ObjectRequirements:
    """Requirements of every entry program of an object, plus the object-wide soft BTF requirements."""

    programs: dict[str, ProgramRequirements]
    btf_kinds: list[Requirement] = field(default_factory=list)

    @property
    def min_version(self) -> Optional[KernelVersion]:
        """The oldest release on which every program can load."""
        vs = [p.min_version for p in self.programs.values() if p.min_version is not None]
        return max(vs) if vs else None


# -- instructions --------------------------------------------------------------------------------
def isa_features(code: bytes, extern_calls: frozenset[int] = frozenset()) -> tuple[set[str], list[int], bool, bool]:
    """Scan raw instructions: (ISA features used, helper ids called, has bpf2bpf calls, has callbacks).

    Feature names are keys of the dataset's ``isa`` table (``jmp32``, ``cpu_v2``, ``cpu_v4``,
    ``atomic_fetch``...). ld_imm64's second slot is skipped. ``extern_calls`` are the instruction
    indexes of kfunc calls (clang emits them as pseudo calls; the loader rewrites them).
    """
    feats: set[str] = set()
    helpers: list[int] = []
    calls = callbacks = False
    n = len(code) // 8
    i = 0
    while i < n:
        op, regs, off, imm = _SLOT.unpack_from(code, i * 8)
        here = i
        i += 1
        cls = op & 0x07
        if op == 0x18:  # ld_imm64
            if regs >> 4 == 4:
                callbacks = True
            i += 1
            continue
        if cls in (InsnClass.JMP, InsnClass.JMP32):
            jop = op & 0xF0
            if cls == InsnClass.JMP32:
                feats.add("cpu_v4" if jop == JumpOp.JA else "jmp32")  # JMP32|JA is gotol
            if jop in (JumpOp.JLT, JumpOp.JLE, JumpOp.JSLT, JumpOp.JSLE):
                feats.add("cpu_v2")
            if jop == JumpOp.JCOND:
                feats.add("may_goto")
            if cls == InsnClass.JMP and jop == JumpOp.CALL:
                src = regs >> 4
                if src == 0:
                    helpers.append(imm)
                elif src == 1 and here not in extern_calls:
                    calls = True
        elif cls in (InsnClass.ALU, InsnClass.ALU64):
            aop = op & 0xF0
            if aop in (0x30, 0x90) and off == 1:  # sdiv / smod
                feats.add("cpu_v4")
            elif aop == 0xB0 and cls == InsnClass.ALU64 and op & 0x08 and off == 1:
                feats.add("addr_space_cast")
            elif aop == 0xB0 and off in (8, 16, 32):  # movsx
                feats.add("cpu_v4")
            elif aop == 0xD0 and cls == InsnClass.ALU64:  # bswap
                feats.add("cpu_v4")
        elif cls == InsnClass.LDX and op & 0xE0 == Mode.MEMSX:
            feats.add("cpu_v4")
        elif cls == InsnClass.STX and op & 0xE0 == Mode.ATOMIC:
            if imm in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL):
                feats.add("load_acquire_store_release")
            elif imm & AtomicOp.FETCH or imm in (AtomicOp.XCHG, AtomicOp.CMPXCHG):
                feats.add("atomic_fetch")
            elif imm != AtomicOp.ADD:
                feats.add("atomic_bitwise")
            else:
                feats.add("atomic_add")
    return feats, helpers, calls, callbacks


# -- programs ------------------------------------------------------------------------------------
def _type_name(value: object) -> str:
    return value.name if hasattr(value, "name") else str(value)  # type: ignore[attr-defined]


def _linked(spec: "ObjectSpec", prog: "ProgramSpec") -> tuple[bytes, list, list[str]]:
    """The program with its subprograms appended (code, relocations, subprogram names)."""
    from ..elf.linker import link_program
    from ..errors import CoreBPFError

    try:
        linked = link_program(spec, prog)
    except CoreBPFError:
        return bytes(prog.instructions), list(prog.relocations), []
    subs = [n for n in linked.layout if n != prog.name]
    return bytes(linked.insns), linked.relocations, subs


def _map_requirements(m: "MapSpec") -> list[Requirement]:
    out = []
    if m.is_data:
        out.append(lookup("features", "global_data"))
        if m.readonly:
            out.append(lookup("features", "map_freeze"))
        return out
    out.append(lookup("map_types", _type_name(m.type)))
    if m.inner is not None:
        out += _map_requirements(m.inner)
    return out


def analyze_program(spec: "ObjectSpec", prog: "ProgramSpec") -> ProgramRequirements:
    """Requirements of one entry program of ``spec``."""
    code, relocs, subs = _linked(spec, prog)
    kcalls = frozenset(rel.insn for rel in relocs if rel.kind == RelocKind.EXTERN_CALL)
    feats, helper_ids, calls, callbacks = isa_features(code, kcalls)
    attach = prog.expected_attach_type
    r = ProgramRequirements(
        name=prog.name, section=prog.section, prog_type=_type_name(prog.type),
        attach_type=_type_name(attach) if attach is not None else None, attach_to=prog.attach_to,
        insn_count=len(code) // 8, subprograms=subs, sleepable=bool(prog.flags & _SLEEPABLE))
    reqs = r.requirements
    reqs.append(lookup("prog_types", r.prog_type))
    if attach is not None:
        req = lookup("attach_types", r.attach_type)
        # libbpf drops an optional expected attach type on kernels without it (SEC_EXP_ATTACH_OPT)
        optional = prog.section_def is not None and prog.section_def.flags & 1
        (r.optional if optional else reqs).append(req)

    names: set[str] = set()
    for hid in helper_ids:
        name = helper_name(hid)
        if name is None:
            if hid not in r.unknown_helpers:
                r.unknown_helpers.append(hid)
        else:
            names.add(name)
    r.helpers = sorted(names)
    reqs += [lookup("helpers", h) for h in r.helpers]

    if calls:
        feats.add("bpf2bpf_calls")
    if callbacks:
        feats.add("callbacks")
    r.isa = sorted(feats)
    reqs += [lookup("isa", f) for f in r.isa]

    maps: dict[str, str] = {}
    kfuncs: set[str] = set()
    strong_kfuncs: set[str] = set()
    ksyms: set[str] = set()
    kconfig: set[str] = set()
    for rel in relocs:
        if rel.kind in (RelocKind.MAP, RelocKind.DATA) and rel.target in spec.maps:
            maps[rel.target] = _type_name(spec.maps[rel.target].type)
        elif rel.kind in (RelocKind.EXTERN_CALL, RelocKind.EXTERN_LD64) and rel.target in spec.externs:
            ext = spec.externs[rel.target]
            if ext.kind == ExternKind.KCONFIG:
                kconfig.add(ext.name)
                maps[".kconfig"] = _type_name(MapType.ARRAY)
            elif ext.is_func:
                kfuncs.add(ext.essential_name)
                if not ext.weak:
                    strong_kfuncs.add(ext.essential_name)
            else:
                ksyms.add(ext.name)
    # map-in-map and prog-array contents: the outer map is what the program references
    r.maps = sorted(maps)
    r.map_types = {n: maps[n] for n in r.maps}
    for n in r.maps:
        if n in spec.maps:
            reqs += _map_requirements(spec.maps[n])
    r.kfuncs, r.ksyms, r.kconfig = sorted(kfuncs), sorted(ksyms), sorted(kconfig)
    # a __weak kfunc is optional by design (called behind bpf_ksym_exists(); absent, the loader zeroes
    # the call and the verifier never reaches it), so it sets no minimum kernel
    if strong_kfuncs:
        reqs.append(lookup("features", "kfunc_calls"))
        reqs += [q for q in (lookup("kfuncs", k) for k in sorted(strong_kfuncs)) if q.version is not None]
    typed_vars = [n for n in r.ksyms if spec.externs[n].typed]
    if typed_vars:
        reqs.append(lookup("features", "ksym_typed_vars"))
    if r.sleepable:
        reqs.append(lookup("features", "sleepable_uprobe" if prog.type == ProgType.KPROBE else "sleepable"))

    kinds: set[str] = set()
    for f in (prog, *(spec.subprograms[s] for s in subs if s in spec.subprograms)):
        for rec in f.core_relos:
            kinds.add(_type_name(rec.kind))
    r.core_kinds = sorted(kinds)
    if "TYPE_MATCHES" in kinds:
        reqs.append(lookup("features", "core_type_matches"))
    if prog.type == ProgType.STRUCT_OPS:
        reqs.append(lookup("map_types", "STRUCT_OPS"))
    return r


def _btf_kinds(spec: "ObjectSpec") -> list[Requirement]:
    if spec.btf is None:
        return []
    seen = sorted({spec.btf.kind_of(i).name for i in range(1, spec.btf.last_id + 1)})
    return [lookup("btf_kinds", k) for k in seen]


def analyze(spec: "ObjectSpec") -> ObjectRequirements:
    """Requirements of every entry program of ``spec`` (sorted by name)."""
    progs = {n: analyze_program(spec, spec.programs[n]) for n in sorted(spec.programs)}
    return ObjectRequirements(progs, _btf_kinds(spec))
