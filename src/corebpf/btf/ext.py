"""``.BTF.ext``: per-instruction debug and relocation records that go with an object's ``.BTF``.

Layout: a header (magic ``0xeb9f``, version 1, ``hdr_len``, then offset/length pairs of the
func_info, line_info and, when the header is long enough, CO-RE relocation subsections, all
relative to the end of the header). Each subsection starts with the record size, then for each
ELF section: the section name's string offset, a record count and the records. A record size
larger than we know is accepted (newer producers may append fields); a smaller one is an error.
Strings are in the ``.BTF`` string table, so a :class:`~corebpf.btf.BTF` is needed to name things.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, TypeVar

from ..errors import BTFError
from .core_spec import CoreReloKind  # re-exported: records carry it
from .reader import BTF

__all__ = ["BTFExt", "FuncInfo", "LineInfo", "CoreRelo", "CoreReloKind", "parse_btf_ext"]


@dataclass(frozen=True)
class FuncInfo:
    """``struct bpf_func_info``: the function (FUNC type id) starting at ``insn_off`` (bytes in the ELF)."""

    insn_off: int
    type_id: int


@dataclass(frozen=True)
class LineInfo:
    """``struct bpf_line_info``: source line of the instruction at ``insn_off`` (bytes)."""

    insn_off: int
    file_name_off: int
    line_off: int
    line: int
    col: int
    file_name: str = ""
    line_text: str = ""


@dataclass(frozen=True)
class CoreRelo:
    """``struct bpf_core_relo``: a CO-RE relocation of the instruction at ``insn_off`` (bytes).

    ``access`` is the access string, e.g. ``"0:1:2"`` (colon-separated member/array indexes from
    the root type ``type_id``), or for enum relocations the enumerator index.
    """

    insn_off: int
    type_id: int
    access_str_off: int
    kind: "CoreReloKind | int"
    access: str = ""

    @property
    def access_path(self) -> list[int]:
        """The access string as integers (empty when it is not of the ``a:b:c`` form)."""
        try:
            return [int(x) for x in self.access.split(":")] if self.access else []
        except ValueError:
            return []


_R = TypeVar("_R")


@dataclass
class BTFExt:
    """A parsed ``.BTF.ext``: records grouped by ELF section name."""

    func_info: dict[str, list[FuncInfo]] = field(default_factory=dict)
    line_info: dict[str, list[LineInfo]] = field(default_factory=dict)
    core_relos: dict[str, list[CoreRelo]] = field(default_factory=dict)
    byteorder: str = "little"
    func_info_rec_size: int = 8
    line_info_rec_size: int = 16
    core_relo_rec_size: int = 16

    @classmethod
    def from_bytes(cls, data: bytes, btf: Optional[BTF] = None) -> "BTFExt":
        """Parse a ``.BTF.ext`` blob; ``btf`` (the object's ``.BTF``) names sections, files and lines."""
        return parse_btf_ext(data, btf)

    @classmethod
    def from_elf(cls, path: "str | Path") -> tuple[BTF, "BTFExt"]:
        """The ``.BTF`` and ``.BTF.ext`` of an ELF object."""
        from .archive import elf_section, read_file

        data = read_file(Path(path))
        sec = elf_section(data, ".BTF", source=str(path))
        if sec is None:
            raise BTFError(f"{path}: no .BTF section (compile with clang -g)")
        btf = BTF.from_bytes(sec)
        btf.source = str(path)
        ext = elf_section(data, ".BTF.ext", source=str(path))
        if ext is None:
            return btf, cls(byteorder=btf.byteorder)
        return btf, parse_btf_ext(ext, btf)


def _sections(data: bytes, e: str, start: int, length: int, what: str, min_rec: int,
              parse: Callable[[int], _R], name_of: Callable[[int], str]) -> tuple[int, dict[str, list[_R]]]:
    """Walk one subsection; ``parse(pos)`` decodes one record at ``pos``."""
    out: dict[str, list[_R]] = {}
    if length == 0:
        return min_rec, out
    end = start + length
    if end > len(data):
        raise BTFError(f".BTF.ext {what} at offset {start}: {length} bytes run past the end ({len(data)})")
    if length < 4:
        raise BTFError(f".BTF.ext {what} at offset {start}: too short for the record size")
    rec_size = struct.unpack_from(e + "I", data, start)[0]
    if rec_size < min_rec or rec_size % 4:
        raise BTFError(f".BTF.ext {what} at offset {start}: record size {rec_size} (need a multiple of 4 >= {min_rec})")
    pos = start + 4
    while pos < end:
        if pos + 8 > end:
            raise BTFError(f".BTF.ext {what} at offset {pos}: truncated section header")
        name_off, count = struct.unpack_from(e + "II", data, pos)
        pos += 8
        if count == 0:
            raise BTFError(f".BTF.ext {what} at offset {pos - 4}: section with zero records")
        if pos + count * rec_size > end:
            raise BTFError(f".BTF.ext {what} at offset {pos - 4}: {count} records of {rec_size} bytes run past "
                           f"the subsection end at offset {end}")
        name = name_of(name_off)
        recs = out.setdefault(name, [])
        for _ in range(count):
            recs.append(parse(pos))
            pos += rec_size
    return rec_size, out


def parse_btf_ext(data: bytes, btf: Optional[BTF] = None) -> BTFExt:
    """Parse ``.BTF.ext`` (see the module docstring); raises :class:`BTFError` naming the offset."""
    if len(data) < 8:
        raise BTFError(f".BTF.ext truncated at offset {len(data)}: a header needs at least 8 bytes")
    magic = struct.unpack_from("<H", data, 0)[0]
    if magic == 0xEB9F:
        e, order = "<", "little"
    elif magic == 0x9FEB:
        e, order = ">", "big"
    else:
        raise BTFError(f".BTF.ext at offset 0: bad magic {magic:#06x}")
    if btf is not None and btf.byteorder != order:
        raise BTFError(".BTF.ext and .BTF differ in byte order")
    version, _flags, hdr_len = struct.unpack_from(e + "BBI", data, 2)
    if version != 1:
        raise BTFError(f".BTF.ext at offset 2: unsupported version {version}")
    if hdr_len < 24 or hdr_len > len(data):
        raise BTFError(f".BTF.ext at offset 4: bad header length {hdr_len} (file has {len(data)} bytes)")
    fi_off, fi_len, li_off, li_len = struct.unpack_from(e + "IIII", data, 8)
    cr_off = cr_len = 0
    if hdr_len >= 32:
        cr_off, cr_len = struct.unpack_from(e + "II", data, 24)

    def name_of(off: int) -> str:
        if btf is None:
            return f"#{off}"
        return btf.string_at(off)

    def text(off: int) -> str:
        if btf is None or off == 0:
            return ""
        return btf.string_at(off)

    def func(pos: int) -> FuncInfo:
        return FuncInfo(*struct.unpack_from(e + "II", data, pos))

    def line(pos: int) -> LineInfo:
        insn, file_off, line_off, line_col = struct.unpack_from(e + "IIII", data, pos)
        return LineInfo(insn, file_off, line_off, line_col >> 10, line_col & 0x3FF, text(file_off), text(line_off))

    def relo(pos: int) -> CoreRelo:
        insn, tid, acc, kind = struct.unpack_from(e + "IIII", data, pos)
        try:
            k: CoreReloKind | int = CoreReloKind(kind)
        except ValueError:
            k = kind
        return CoreRelo(insn, tid, acc, k, text(acc) if btf is not None else "")

    ext = BTFExt(byteorder=order)
    ext.func_info_rec_size, ext.func_info = _sections(data, e, hdr_len + fi_off, fi_len, "func_info", 8, func, name_of)
    ext.line_info_rec_size, ext.line_info = _sections(data, e, hdr_len + li_off, li_len, "line_info", 16, line, name_of)
    ext.core_relo_rec_size, ext.core_relos = _sections(data, e, hdr_len + cr_off, cr_len, "core_relo", 16, relo,
                                                       name_of)
    return ext
