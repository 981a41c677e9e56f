"""A small, strict ELF64 reader for BPF relocatable objects.

Only what a BPF loader needs: section headers and their bytes, the symbol table and ``SHT_REL``
relocation entries. Every offset is bounds-checked so malformed input raises :class:`ELFError`
(naming what is wrong and where) instead of an ``IndexError`` or ``struct.error``. It does not use
pyelftools: BPF objects are tiny, and a direct reader is several times faster at open time (which
the load benchmark measures) and easier to keep exception-tight under fuzzing.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from typing import Optional

from ..errors import ELFError

__all__ = ["ELFFile", "Section", "Symbol", "Rel", "EM_BPF", "SHT_PROGBITS", "SHT_NOBITS", "SHT_SYMTAB", "SHT_REL",
           "SHF_EXECINSTR", "SHF_ALLOC", "SHF_WRITE", "STT_FUNC", "STT_OBJECT", "STT_SECTION", "STT_NOTYPE",
           "STB_LOCAL", "STB_GLOBAL", "STB_WEAK", "SHN_UNDEF", "SHN_ABS", "SHN_COMMON", "SHN_LORESERVE"]

EM_BPF = 247
ET_REL = 1
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 1, 2, 3, 4, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON = 0, 0xFF00, 0xFFF1, 0xFFF2
STV_DEFAULT, STV_INTERNAL, STV_HIDDEN = 0, 1, 2

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")


@dataclass(frozen=True)
class Section:
    """One section header, with its bytes (``b""``-sized zeros are not materialised for NOBITS)."""

    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int
    data: bytes

    @property
    def is_exec(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)


@dataclass(frozen=True)
class Symbol:
    """One ``Elf64_Sym``."""

    index: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    visibility: int
    shndx: int

    @property
    def is_extern(self) -> bool:
        """Undefined global/weak symbol with a name: a ``__kconfig``/``__ksym`` extern."""
        return self.shndx == SHN_UNDEF and self.bind in (STB_GLOBAL, STB_WEAK) and bool(self.name)


@dataclass(frozen=True)
class Rel:
    """One ``Elf64_Rel`` of a section: ``offset`` into the target section, symbol and type."""

    offset: int
    sym: int
    type: int


class ELFFile:
    """The parsed ELF file. ``sections`` by index, ``by_name``, ``symbols`` and ``rels`` (relocation
    entries keyed by the index of the section they apply to)."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self.source = source
        self._data = data
        self.sections: list[Section] = []
        self.by_name: dict[str, Section] = {}
        self.symbols: list[Symbol] = []
        self.rels: dict[int, list[Rel]] = {}
        self._parse()

    def _err(self, what: str) -> ELFError:
        return ELFError(f"{self.source}: {what}")

    def _parse(self) -> None:
        data = self._data
        if len(data) < 16 or data[:4] != b"\x7fELF":
            raise self._err("not an ELF file (bad magic at offset 0)")
        if data[4] != 2:
            raise self._err(f"ELF class {data[4]} at offset 4: BPF objects are 64-bit (ELFCLASS64)")
        host = 1 if sys.byteorder == "little" else 2
        if data[5] != host:
            order = {1: "little", 2: "big"}.get(data[5], f"unknown ({data[5]})")
            raise self._err(f"byte order {order}-endian at offset 5 does not match this {sys.byteorder}-endian host: "
                            f"compile with -target bpf (or bpfel/bpfeb matching the host)")
        if len(data) < _EHDR.size:
            raise self._err(f"truncated ELF header: {len(data)} bytes, need {_EHDR.size}")
        (_ident, e_type, e_machine, _ver, _entry, _phoff, shoff, _flags, _ehsize, _phentsize, _phnum,
         shentsize, shnum, shstrndx) = _EHDR.unpack_from(data, 0)
        if e_machine != EM_BPF:
            raise self._err(f"e_machine {e_machine} at offset 18 is not EM_BPF ({EM_BPF}): not a BPF object")
        if e_type != ET_REL:
            raise self._err(f"e_type {e_type} at offset 16: expected a relocatable object (ET_REL)")
        if shnum == 0:
            raise self._err("no section headers")
        if shentsize != _SHDR.size:
            raise self._err(f"section header size {shentsize} at offset 58, expected {_SHDR.size}")
        if shoff + shnum * _SHDR.size > len(data) or shoff < _EHDR.size:
            raise self._err(f"truncated: {shnum} section headers at offset {shoff} run past the end ({len(data)} bytes)")
        raw = []
        for i in range(shnum):
            raw.append(_SHDR.unpack_from(data, shoff + i * _SHDR.size))
        if shstrndx >= shnum:
            raise self._err(f"section name table index {shstrndx} out of range ({shnum} sections)")
        names = self._section_bytes(raw[shstrndx], shstrndx)
        for i, (name_off, stype, flags, _addr, off, size, link, info, align, entsize) in enumerate(raw):
            body = self._section_bytes(raw[i], i) if stype != SHT_NOBITS else b""
            name = _cstr(names, name_off, lambda: self._err(f"section #{i}: name offset {name_off} out of range"))
            sec = Section(i, name, stype, flags, off, size, link, info, align, entsize, body)
            self.sections.append(sec)
            if name and name not in self.by_name:
                self.by_name[name] = sec
        self._parse_symbols()
        for sec in self.sections:
            if sec.type == SHT_REL:
                # only relocations of code and of .maps matter to a loader; DWARF and .BTF ones are
                # left alone (they are most of the entries, and libbpf ignores them too)
                target = self.sections[sec.info] if 0 < sec.info < len(self.sections) else None
                if target is None or target.is_exec or target.name == ".maps":
                    self._parse_rels(sec)
            elif sec.type == SHT_RELA and sec.size:
                raise self._err(f"section {sec.name!r}: RELA relocations are not used by BPF objects")

    def _section_bytes(self, hdr: tuple, index: int) -> bytes:
        off, size = hdr[4], hdr[5]
        if hdr[1] == SHT_NOBITS:
            return b""
        if off + size > len(self._data):
            raise self._err(f"truncated: section #{index} [{off}, {off + size}) runs past the end ({len(self._data)} bytes)")
        return bytes(self._data[off:off + size])

    def _parse_symbols(self) -> None:
        symtab = next((s for s in self.sections if s.type == SHT_SYMTAB), None)
        if symtab is None:
            raise self._err("no symbol table (SHT_SYMTAB): not a clang-compiled BPF object?")
        if symtab.entsize != _SYM.size or symtab.size % _SYM.size:
            raise self._err(f"symbol table {symtab.name!r}: entry size {symtab.entsize} / size {symtab.size} "
                            f"inconsistent with {_SYM.size}-byte Elf64_Sym")
        if symtab.link >= len(self.sections):
            raise self._err(f"symbol table {symtab.name!r}: string table index {symtab.link} out of range")
        strtab = self.sections[symtab.link].data
        body = symtab.data
        count = len(body) // _SYM.size
        nsec = len(self.sections)
        for i in range(count):
            name_off, info, other, shndx, value, size = _SYM.unpack_from(body, i * _SYM.size)
            name = _cstr(strtab, name_off, lambda: self._err(f"symbol #{i}: name offset {name_off} out of range"))
            if shndx >= nsec and shndx < SHN_LORESERVE:
                raise self._err(f"symbol #{i} {name!r}: section index {shndx} out of range")
            self.symbols.append(Symbol(i, name, value, size, info & 0xF, info >> 4, other & 0x3, shndx))

    def _parse_rels(self, sec: Section) -> None:
        if sec.info >= len(self.sections) or sec.info == 0:
            raise self._err(f"relocation section {sec.name!r}: target section index {sec.info} out of range")
        if sec.size % _REL.size:
            raise self._err(f"relocation section {sec.name!r}: size {sec.size} is not a multiple of {_REL.size}")
        nsym = len(self.symbols)
        out = self.rels.setdefault(sec.info, [])
        for pos, (off, info) in enumerate(_REL.iter_unpack(sec.data)):
            sym = info >> 32
            if sym >= nsym:
                raise self._err(f"relocation section {sec.name!r} entry at offset {pos * _REL.size}: symbol index "
                                f"{sym} out of range ({nsym} symbols)")
            out.append(Rel(off, sym, info & 0xFFFFFFFF))

    def section(self, name: str) -> Optional[Section]:
        """The first section named ``name`` (None if absent)."""
        return self.by_name.get(name)


def _cstr(table: bytes, off: int, err) -> str:
    if off == 0:
        return ""
    if off >= len(table):
        raise err()
    end = table.find(b"\0", off)
    if end < 0:
        raise err()
    return table[off:end].decode("utf-8", errors="replace")
