"""Functions of an object: entry programs in ``SEC()`` sections and ``.text`` subprograms.

Like libbpf, every ``STT_FUNC`` symbol of an executable section is one function; functions in
``.text`` are subprograms (appended to the programs that call them at load), all others are entry
programs whose type comes from their section name. ``.BTF.ext`` records are split per function with
offsets made relative to the function start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from .._sys._generated import ProgType
from ..errors import ELFError
from .reader import STB_LOCAL, STT_FUNC, STV_HIDDEN, STV_INTERNAL
from .sections import match_section
from .specs import ProgramSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..btf.ext import BTFExt
    from .reader import ELFFile

__all__ = ["split_functions", "attach_ext_info", "TEXT"]

TEXT = ".text"


def split_functions(elf: "ELFFile") -> list[ProgramSpec]:
    """Every function of every executable section, sorted by (section index, offset) as libbpf does."""
    out: list[ProgramSpec] = []
    execs = {s.index: s for s in elf.sections if s.is_exec and s.size > 0}
    for sym in elf.symbols:
        sec = execs.get(sym.shndx)
        if sec is None or sym.type != STT_FUNC:
            continue
        if not sym.name:
            raise ELFError(f"{elf.source}: section {sec.name!r}: unnamed function at offset {sym.value}")
        if sym.value % 8 or sym.size % 8 or sym.value + sym.size > sec.size or sym.size == 0:
            raise ELFError(f"{elf.source}: section {sec.name!r}: function {sym.name!r} at offset {sym.value} "
                           f"({sym.size} bytes) is misaligned or crosses the section boundary ({sec.size} bytes)")
        is_sub = sec.name == TEXT
        if not is_sub and sym.bind == STB_LOCAL:
            raise ELFError(f"{elf.source}: section {sec.name!r}: program {sym.name!r} is static, which libbpf "
                           f"does not support: make it a global function")
        # SEC("?xdp"): a program libbpf does not load unless asked (autoload off)
        optional = not is_sub and sec.name.startswith("?")
        sdef = None if is_sub else match_section(sec.name[1:] if optional else sec.name)
        ptype: ProgType | int = sdef.prog_type if sdef else ProgType.UNSPEC
        prog = ProgramSpec(
            name=sym.name, section=sec.name[1:] if optional else sec.name, type=ptype, elf_section=sec.name,
            instructions=bytes(sec.data[sym.value:sym.value + sym.size]),
            expected_attach_type=sdef.attach_type if sdef else None,
            attach_to=sdef.attach_target if sdef else "",
            flags=sdef.prog_flags if sdef else 0,
            section_offset=sym.value, section_index=sec.index, is_subprog=is_sub,
            global_symbol=sym.bind != STB_LOCAL,
            btf_static=sym.bind != STB_LOCAL and sym.visibility in (STV_HIDDEN, STV_INTERNAL),
            section_def=sdef, attach_btf=bool(sdef and sdef.attach_btf), autoload=not optional)
        out.append(prog)
    out.sort(key=lambda p: (p.section_index, p.section_offset))
    _check_overlaps(elf, out)
    return out


def _check_overlaps(elf: "ELFFile", progs: list[ProgramSpec]) -> None:
    prev: Optional[ProgramSpec] = None
    for p in progs:
        if prev is not None and prev.section_index == p.section_index and \
                prev.section_offset + len(prev.instructions) > p.section_offset:
            raise ELFError(f"{elf.source}: section {p.section!r}: functions {prev.name!r} and {p.name!r} overlap")
        prev = p


def function_at(progs_of_section: list[ProgramSpec], byte_off: int) -> Optional[ProgramSpec]:
    """The function of a section (sorted by offset) containing ``byte_off``."""
    lo, hi = 0, len(progs_of_section)
    while lo < hi:
        mid = (lo + hi) // 2
        p = progs_of_section[mid]
        if byte_off < p.section_offset:
            hi = mid
        elif byte_off >= p.section_offset + len(p.instructions):
            lo = mid + 1
        else:
            return p
    return None


def attach_ext_info(progs: list[ProgramSpec], ext: "BTFExt", lines: "dict[str, np.ndarray] | None" = None) -> None:
    """Give each function its func_info, line_info and CO-RE records (offsets relative to its start).

    ``lines``: line_info as (n, 4) uint32 arrays per section (see ``ProgramSpec.line_info``); without
    it, ``ext.line_info`` records are used."""
    by_section: dict[str, list[ProgramSpec]] = {}
    for p in progs:
        by_section.setdefault(p.elf_section or p.section, []).append(p)
    if lines is None:
        lines = {name: np.array([(r.insn_off, r.file_name_off, r.line_off, (r.line << 10) | (r.col & 0x3FF))
                                 for r in recs], dtype=np.uint32).reshape(-1, 4)
                 for name, recs in ext.line_info.items()}
    for sec_name, arr in lines.items():
        offs = arr[:, 0]
        for fn in by_section.get(sec_name, ()):
            start, stop = fn.section_offset, fn.section_offset + len(fn.instructions)
            sub = arr[(offs >= start) & (offs < stop)].copy()
            sub[:, 0] -= start
            fn.line_info = sub
    for attr, table in (("func_info", ext.func_info), ("core_relos", ext.core_relos)):
        for sec_name, records in table.items():
            funcs = by_section.get(sec_name)
            if not funcs:
                continue
            for rec in records:
                fn = function_at(funcs, rec.insn_off)
                if fn is None:
                    continue  # libbpf ignores records outside any function
                getattr(fn, attr).append(_rebase(rec, rec.insn_off - fn.section_offset))


def _rebase(rec, off: int):
    """A copy of a frozen .BTF.ext record with another ``insn_off`` (cheaper than dataclasses.replace,
    which re-runs __init__ for each of the thousands of line records)."""
    new = object.__new__(type(rec))
    new.__dict__.update(rec.__dict__)
    object.__setattr__(new, "insn_off", off)
    return new
