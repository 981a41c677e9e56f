"""Where a function lives in an executable or shared library on disk: the file offset uprobes need.

Symbols come from ``.symtab`` and ``.dynsym`` (functions and IFUNCs that are defined); an address is
turned into a file offset through the ``PT_LOAD`` segment that maps it. Library names without a slash
(``"libc.so.6"``, ``"c"``) are found in a process's mappings, the ``ldconfig`` cache or the usual
library directories; program names through ``$PATH``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Optional

from ..errors import CoreBPFError
from ._matches import close_matches
from .planb import TargetNotFoundError

_LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
             "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib")


@dataclass(frozen=True)
class Symbol:
    """A defined function in an ELF file: its name, virtual address, size and file offset."""

    name: str
    address: int
    size: int
    offset: int


def _ldconfig_paths() -> dict[str, str]:
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[str, str] = {}
    for line in out.splitlines():
        if "=>" in line:
            left, path = line.rsplit("=>", 1)
            found.setdefault(left.split()[0], path.strip())
    return found


def resolve_binary(name: str, pid: Optional[int] = None) -> str:
    """An absolute path for ``name``: a path as is; a library (``libc.so.6``, ``"c"``) via the process's
    mappings, ldconfig or the library directories; a program via ``$PATH``."""
    if "/" in name:
        path = os.path.abspath(name)
        if not os.path.exists(path):
            d = os.path.dirname(path)
            pool = os.listdir(d) if os.path.isdir(d) else []
            raise TargetNotFoundError("file", path, [os.path.join(d, m) for m in close_matches(os.path.basename(path),
                                                                                              pool)], d)
        return path
    libname = name if ".so" in name else f"lib{name.removeprefix('lib')}.so"
    if pid is not None:
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and os.path.basename(parts[5].strip()).startswith(libname):
                        return f"/proc/{pid}/root{parts[5].strip()}"
        except OSError:
            pass
    if ".so" in libname:
        cache = _ldconfig_paths()
        for key, path in cache.items():
            if key == libname or key.startswith(libname + "."):
                return path
        for d in _LIB_DIRS:
            try:
                for entry in sorted(os.listdir(d)):
                    if entry == libname or entry.startswith(libname + "."):
                        return os.path.join(d, entry)
            except OSError:
                continue
    found = shutil.which(name)
    if found:
        return os.path.realpath(found)
    raise TargetNotFoundError("binary or library", name, close_matches(libname, _ldconfig_paths()),
                              "$PATH, ldconfig cache and library directories")


@functools.lru_cache(maxsize=32)
def _symbols(path: str, mtime: float) -> dict[str, Symbol]:
    from elftools.common.exceptions import ELFError as PyELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            loads = [(s["p_vaddr"], s["p_memsz"], s["p_offset"]) for s in elf.iter_segments()
                     if s["p_type"] == "PT_LOAD"]
            out: dict[str, Symbol] = {}
            for secname in (".symtab", ".dynsym"):
                sec = elf.get_section_by_name(secname)
                if sec is None or not hasattr(sec, "iter_symbols"):
                    continue
                for sym in sec.iter_symbols():
                    if sym["st_info"]["type"] not in ("STT_FUNC", "STT_GNU_IFUNC") or sym["st_shndx"] == "SHN_UNDEF":
                        continue
                    addr = sym["st_value"]
                    if not sym.name or addr == 0 or sym.name in out:
                        continue
                    off = address_to_offset(loads, addr)
                    if off is not None:
                        out[sym.name] = Symbol(sym.name, addr, sym["st_size"], off)
            return out
    except (OSError, PyELFError, ValueError) as exc:
        raise CoreBPFError(f"cannot read ELF symbols of {path}: {exc}") from None


def address_to_offset(loads: list[tuple[int, int, int]], addr: int) -> Optional[int]:
    """File offset of virtual address ``addr`` given ``(vaddr, memsz, offset)`` of the PT_LOAD segments."""
    for vaddr, memsz, off in loads:
        if vaddr <= addr < vaddr + memsz:
            return addr - vaddr + off
    return None


def functions(path: str) -> dict[str, Symbol]:
    """Every defined function of ELF file ``path`` by name (cached per file and mtime)."""
    return _symbols(path, os.stat(path).st_mtime)


def function_offset(path: str, name: str) -> int:
    """The file offset of function ``name`` in ``path`` (``name@VERSION`` and ``name@@VERSION`` accepted)."""
    syms = functions(path)
    sym = syms.get(name) or syms.get(name.split("@", 1)[0])
    if sym is None:
        raise TargetNotFoundError("function", name, close_matches(name, syms), path)
    return sym.offset


__all__ = ["Symbol", "resolve_binary", "functions", "function_offset", "address_to_offset"]
