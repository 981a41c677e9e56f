"""Disassemble the program sections of a BPF ELF object (no kernel): ``llvm-objdump -dr``'s
layout with the kernel printer's syntax.

Each executable section gets a ``Disassembly of section NAME:`` header, function symbols become
``name:`` labels, and relocations are shown on their own line under the instruction they patch
(``R_BPF_64_64 opens``), since object code still has 0 where a map or subprogram goes.
"""

from __future__ import annotations

import os
from typing import Optional

from ..errors import ELFError, InstructionError
from .codec import decode_indexed
from .disasm import Dialect, format_insn

_SHF_EXECINSTR = 0x4
_RELOC_NAMES = {0: "R_BPF_NONE", 1: "R_BPF_64_64", 2: "R_BPF_64_ABS64", 3: "R_BPF_64_ABS32",
                4: "R_BPF_64_NODYLD32", 10: "R_BPF_64_32"}


def disassemble_elf(path: "str | os.PathLike[str]", section: Optional[str] = None, *,
                    dialect: Dialect = Dialect.CURRENT) -> list[str]:
    """A listing of every program section of the object at ``path`` (or just ``section``).

    Raises :class:`~corebpf.errors.ELFError` for files that are not readable ELF objects, and
    :class:`~corebpf.errors.InstructionError` (naming section and offset) for malformed code.
    """
    from elftools.common.exceptions import ELFError as _PyELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            return _listing(elf, section, dialect)
    except OSError as exc:
        raise ELFError(f"cannot read {os.fspath(path)}: {exc.strerror}") from exc
    except (_PyELFError, ValueError, KeyError) as exc:
        if isinstance(exc, InstructionError):
            raise
        raise ELFError(f"{os.fspath(path)} is not a readable ELF object: {exc}") from exc


def _listing(elf: object, only: Optional[str], dialect: Dialect) -> list[str]:
    symtab = elf.get_section_by_name(".symtab")  # type: ignore[attr-defined]
    out: list[str] = []
    found = False
    for index, sec in enumerate(elf.iter_sections()):  # type: ignore[attr-defined]
        if not sec["sh_flags"] & _SHF_EXECINSTR or not sec["sh_size"]:
            continue
        if only is not None and sec.name != only:
            continue
        found = True
        labels: dict[int, list[str]] = {}
        if symtab is not None:
            for sym in symtab.iter_symbols():
                if sym["st_shndx"] == index and sym["st_info"]["type"] == "STT_FUNC":
                    labels.setdefault(sym["st_value"] // 8, []).append(sym.name)
        relocs: dict[int, list[str]] = {}
        rel = elf.get_section_by_name(".rel" + sec.name)  # type: ignore[attr-defined]
        if rel is not None and symtab is not None:
            for r in rel.iter_relocations():
                sym = symtab.get_symbol(r["r_info_sym"])
                name = sym.name or (elf.get_section(sym["st_shndx"]).name  # type: ignore[attr-defined]
                                    if isinstance(sym["st_shndx"], int) else "")
                kind = _RELOC_NAMES.get(r["r_info_type"], f"R_BPF_{r['r_info_type']}")
                relocs.setdefault(r["r_offset"] // 8, []).append(f"{kind} {name}")
        out.append(f"Disassembly of section {sec.name}:")
        try:
            indexed = decode_indexed(sec.data())
        except InstructionError as exc:
            raise InstructionError(f"section {sec.name}: {exc}") from None
        for slot, insn in indexed:
            out.extend(f"{name}:" for name in labels.get(slot, ()))
            out.append(f"{slot:4d}: {format_insn(insn, dialect=dialect)}")
            out.extend(f"\t\t{text}" for text in relocs.get(slot, ()))
    if only is not None and not found:
        raise ELFError(f"no program section {only!r} in this object")
    return out


__all__ = ["disassemble_elf"]
