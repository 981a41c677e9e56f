"""Instruction relocations of program sections, classified the way libbpf records them.

Each ``SHT_REL`` entry of an executable section becomes a :class:`Relocation` on the function that
contains the instruction: a map reference, a global data reference, a bpf2bpf call, a function
address, or an extern (kconfig/ksym variable or kfunc call). Static initialisers of prog arrays and
map-in-map (relocations of ``.maps``) are resolved into ``MapSpec.contents``.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .._sys._generated import MapType
from ..errors import ELFError
from .maps import is_data_section
from .programs import TEXT, function_at
from .reader import SHN_LORESERVE, SHN_UNDEF, STT_FUNC, STT_SECTION
from .specs import ExternSpec, MapSpec, ProgramSpec, RelocKind, Relocation

if TYPE_CHECKING:  # pragma: no cover
    from .reader import ELFFile

__all__ = ["collect_relocations", "collect_map_initialisers"]

_CALL = 0x85
_LD_IMM64 = 0x18
_PSEUDO_CALL = 1


def collect_relocations(elf: "ELFFile", progs: list[ProgramSpec], maps: list[MapSpec],
                        externs: dict[int, ExternSpec]) -> None:
    """Attach relocations to the functions of ``progs`` (``externs`` by symbol index)."""
    by_section: dict[int, list[ProgramSpec]] = {}
    for p in progs:
        by_section.setdefault(p.section_index, []).append(p)
    text = elf.section(TEXT)
    text_idx = text.index if text is not None else -1
    maps_by_loc = {(m.section_index, m.section_offset): m for m in maps if m.origin in ("btf", "legacy")}
    map_sections = {m.section_index for m in maps if m.origin in ("btf", "legacy")}
    for sec_idx, rels in elf.rels.items():
        sec = elf.sections[sec_idx]
        if not sec.is_exec:
            continue
        funcs = by_section.get(sec_idx, [])
        for rel in rels:
            where = f"{elf.source}: section {sec.name!r} relocation at offset {rel.offset}"
            if rel.offset % 8 or rel.offset + 8 > len(sec.data):
                raise ELFError(f"{where}: offset is misaligned or outside the section")
            fn = function_at(funcs, rel.offset)
            if fn is None:
                raise ELFError(f"{where}: not inside any function")
            insn_idx = (rel.offset - fn.section_offset) // 8
            code, regs = sec.data[rel.offset], sec.data[rel.offset + 1]
            imm = struct.unpack_from("<i", sec.data, rel.offset + 4)[0]
            sym = elf.symbols[rel.sym]
            name = sym.name or f"#{rel.sym}"
            if code != _CALL and code != _LD_IMM64:
                raise ELFError(f"{where}: relocation against {name!r} on instruction {insn_idx} of {fn.name!r} "
                               f"with opcode {code:#04x}, which is neither a call nor a 64-bit load")
            if code == _LD_IMM64 and rel.offset + 16 > len(sec.data):
                raise ELFError(f"{where}: 64-bit load at the end of the section")
            if sym.is_extern:
                ext = externs.get(rel.sym)
                if ext is None:
                    raise ELFError(f"{where}: extern {name!r} is neither __kconfig nor __ksym")
                kind = RelocKind.EXTERN_CALL if code == _CALL else RelocKind.EXTERN_LD64
                fn.relocations.append(Relocation(insn_idx, kind, ext.name))
                continue
            if code == _CALL:
                if regs >> 4 != _PSEUDO_CALL:
                    raise ELFError(f"{where}: call relocation on a non-bpf2bpf call (src_reg {regs >> 4})")
                if sym.shndx != text_idx or text_idx < 0:
                    target = elf.sections[sym.shndx].name if 0 < sym.shndx < len(elf.sections) else sym.shndx
                    raise ELFError(f"{where}: call to {name!r} in section {target!r}: subprograms must be in .text")
                if sym.value % 8:
                    raise ELFError(f"{where}: call to {name!r} at misaligned offset {sym.value}")
                fn.relocations.append(Relocation(insn_idx, RelocKind.CALL, name, sym.value))
                continue
            if sym.shndx == SHN_UNDEF or sym.shndx >= SHN_LORESERVE:
                raise ELFError(f"{where}: relocation against {name!r} in special section {sym.shndx:#x}; "
                               f"uninitialised global variable (common symbol)? initialise it or make it static")
            if sym.shndx == text_idx and sym.type in (STT_FUNC, STT_SECTION):
                if sym.value % 8 or imm % 8:
                    raise ELFError(f"{where}: function address of {name!r} at misaligned offset")
                fn.relocations.append(Relocation(insn_idx, RelocKind.SUBPROG_ADDR, name, sym.value))
                continue
            target_sec = elf.sections[sym.shndx]
            if sym.shndx in map_sections:
                m = maps_by_loc.get((sym.shndx, sym.value))
                if m is None:
                    raise ELFError(f"{where}: no map at offset {sym.value} of section {target_sec.name!r}")
                fn.relocations.append(Relocation(insn_idx, RelocKind.MAP, m.name))
                continue
            if is_data_section(target_sec.name):
                fn.relocations.append(Relocation(insn_idx, RelocKind.DATA, target_sec.name, sym.value))
                continue
            raise ELFError(f"{where}: relocation against {name!r} in section {target_sec.name!r}, which is "
                           f"neither a map, global data nor code")
    for p in progs:
        p.relocations.sort(key=lambda r: r.insn)


def collect_map_initialisers(elf: "ELFFile", maps: list[MapSpec], values_at: dict[str, int],
                             progs: list[ProgramSpec]) -> None:
    """Static ``.values = {...}`` of prog arrays and map-in-map, from the relocations of ``.maps``."""
    btf_maps = [m for m in maps if m.origin == "btf"]
    if not btf_maps:
        return
    sec_idx = btf_maps[0].section_index
    rels = elf.rels.get(sec_idx, [])
    entry_progs = {(p.section_index, p.section_offset): p for p in progs if not p.is_subprog}
    by_loc = {(m.section_index, m.section_offset): m for m in btf_maps}
    for rel in rels:
        where = f"{elf.source}: .maps relocation at offset {rel.offset}"
        sym = elf.symbols[rel.sym]
        owner = None
        for m in btf_maps:
            start = values_at.get(m.name)
            if start is not None and start <= rel.offset and (owner is None or start > values_at[owner.name]):
                owner = m
        if owner is None:
            raise ELFError(f"{where}: relocation against {sym.name!r} outside any map's 'values' initialiser")
        delta = rel.offset - values_at[owner.name]
        if delta % 8:
            raise ELFError(f"{where}: misaligned 'values' slot in map {owner.name!r}")
        index = delta // 8
        if owner.type == MapType.PROG_ARRAY:
            if sym.type != STT_FUNC or (sym.shndx, sym.value) not in entry_progs:
                raise ELFError(f"{where}: prog array {owner.name!r} slot {index}: {sym.name!r} is not a BPF program")
            target = entry_progs[(sym.shndx, sym.value)].name
        else:
            inner = by_loc.get((sym.shndx, sym.value))
            if inner is None:
                raise ELFError(f"{where}: map-in-map {owner.name!r} slot {index}: {sym.name!r} is not a map in .maps")
            target = inner.name
        if owner.max_entries and index >= owner.max_entries:
            raise ELFError(f"{where}: map {owner.name!r} slot {index} exceeds max_entries {owner.max_entries}")
        owner.contents.append((index, target))
