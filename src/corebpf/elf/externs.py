"""``__kconfig`` and ``__ksym`` externs: which symbols, of which BTF type, laid out like libbpf.

kconfig externs live in a synthetic ``.kconfig`` array map whose layout libbpf fixes by sorting
them (alignment descending, then size, then name); ksyms are resolved to kernel BTF ids or
addresses at load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .._sys._generated import MapType
from ..btf.types import Func, Int, Kind, Type, Var, Void
from ..errors import BTFError, ELFError
from .maps import BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, datasecs
from .reader import STB_WEAK
from .specs import ExternKind, ExternSpec, MapSpec, VariableSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from .reader import ELFFile

__all__ = ["collect_externs", "kconfig_map", "KCONFIG_SEC", "KSYMS_SEC"]

KCONFIG_SEC = ".kconfig"
KSYMS_SEC = ".ksyms"
# Kconfig values are scalars and strings (the longest real ones, e.g. CONFIG_CMDLINE, are a few KiB); a
# larger extern comes from corrupt BTF and would make the zeroed .kconfig map absurdly large.
MAX_KCONFIG_EXTERN_SIZE = 64 * 1024


def _extern_section(btf: "BTF", type_id: int) -> Optional[str]:
    for t in datasecs(btf):
        for vs in t.vars:
            if vs.type_id == type_id:
                return t.name
    return None


def _find_extern_type(btf: "BTF", name: str) -> Optional[Type]:
    for t in btf.find_all(name):
        if t.name != name:
            continue
        if isinstance(t, Var) and t.linkage == 2:  # BTF_VAR_GLOBAL_EXTERN
            return t
        if isinstance(t, Func) and int(t.linkage) == 2:  # BTF_FUNC_EXTERN
            return t
    return None


def _kconfig_supported(t: Type) -> bool:
    r = t.resolve()
    if isinstance(r, Int) or r.kind in (Kind.ENUM, Kind.ENUM64):
        return True
    if r.kind == Kind.ARRAY:  # char arrays (strings)
        elem = r.elem_type.resolve()  # type: ignore[attr-defined]
        return isinstance(elem, Int) and elem.size == 1
    return False


def collect_externs(elf: "ELFFile", btf: Optional["BTF"]) -> dict[int, ExternSpec]:
    """Externs by ELF symbol index, kconfig offsets assigned."""
    out: dict[int, ExternSpec] = {}
    syms = [s for s in elf.symbols if s.is_extern]
    if not syms:
        return out
    if btf is None:
        raise ELFError(f"{elf.source}: extern {syms[0].name!r} needs .BTF to know its type (compile with -g)")
    sec_of: dict[int, Optional[str]] = {}
    for sym in syms:
        t = _find_extern_type(btf, sym.name)
        if t is None:
            raise ELFError(f"{elf.source}: no BTF for extern {sym.name!r} (declare it __kconfig or __ksym)")
        sec = sec_of.get(t.id) if t.id in sec_of else sec_of.setdefault(t.id, _extern_section(btf, t.id))
        weak = sym.bind == STB_WEAK
        if sec == KCONFIG_SEC:
            if isinstance(t, Func):
                raise ELFError(f"{elf.source}: extern function {sym.name!r} cannot be __kconfig")
            vt = t.type  # type: ignore[attr-defined]
            if not _kconfig_supported(vt):
                raise ELFError(f"{elf.source}: __kconfig extern {sym.name!r} has unsupported type {vt.format_c()!r}: "
                               f"use an integer, bool, enum, tristate or char array")
            try:
                size, align = vt.size, vt.alignment
            except BTFError as exc:
                raise ELFError(f"{elf.source}: __kconfig extern {sym.name!r}: {exc}") from None
            if not 0 < size <= MAX_KCONFIG_EXTERN_SIZE:
                raise ELFError(f"{elf.source}: __kconfig extern {sym.name!r} is {size} bytes (BTF type {vt.id}); "
                               f"kconfig values are at most {MAX_KCONFIG_EXTERN_SIZE} bytes: the object's BTF is "
                               f"corrupt, rebuild it")
            out[sym.index] = ExternSpec(t.name, ExternKind.KCONFIG, weak, t.id, size=size, align=align,
                                        symbol_index=sym.index)
        elif sec == KSYMS_SEC:
            is_func = isinstance(t, Func)
            target = 0
            if not is_func:
                target_t = t.type.skip_qualifiers()  # type: ignore[attr-defined]
                target = 0 if isinstance(target_t, Void) else target_t.id
            out[sym.index] = ExternSpec(t.name, ExternKind.KSYM, weak, t.id, is_func=is_func,
                                        target_type_id=target, symbol_index=sym.index)
        else:
            raise ELFError(f"{elf.source}: extern {sym.name!r} is in unrecognised section {sec!r} "
                           f"(expected .kconfig or .ksyms)")
    kcfg = sorted((e for e in out.values() if e.kind == ExternKind.KCONFIG), key=lambda e: (-e.align, e.size, e.name))
    off = 0
    for e in kcfg:
        e.offset = -(-off // e.align) * e.align
        off = e.offset + e.size
    return out


def kconfig_map(externs: dict[int, ExternSpec], btf: Optional["BTF"]) -> tuple[Optional[MapSpec],
                                                                                 dict[str, VariableSpec]]:
    """The ``.kconfig`` map (zeroed; filled at load) and its externs as read-only variables."""
    kcfg = [e for e in externs.values() if e.kind == ExternKind.KCONFIG]
    if not kcfg:
        return None, {}
    size = max(e.offset + e.size for e in kcfg)
    ds_id = 0
    if btf is not None:
        ds = [t for t in btf.find_all(KCONFIG_SEC, Kind.DATASEC) if t.name == KCONFIG_SEC]
        ds_id = ds[0].id if ds else 0
    spec = MapSpec(name=KCONFIG_SEC, type=MapType.ARRAY, key_size=4, value_size=size, max_entries=1,
                   flags=BPF_F_RDONLY_PROG | BPF_F_MMAPABLE, section=KCONFIG_SEC, origin="kconfig",
                   data=bytearray(size), readonly=True, value_type_id=ds_id)
    variables = {}
    for e in kcfg:
        vt = btf[e.type_id].type if btf is not None else None  # type: ignore[union-attr]
        variables[e.name] = VariableSpec(e.name, KCONFIG_SEC, KCONFIG_SEC, e.offset, e.size,
                                         vt.id if vt is not None else 0, vt, True)
    return spec, variables

