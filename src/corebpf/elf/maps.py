"""Map definitions of an object: BTF maps (``.maps``), legacy ``maps`` and global data sections.

clang leaves DATASEC sizes and variable offsets at zero in ``.BTF``; like libbpf, the real offsets
come from the ELF symbols of the same names (:func:`datasec_vars`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from .._sys._generated import MapType
from ..btf.types import Array, Datasec, FuncProto, Kind, Pointer, Struct, Var
from ..errors import BTFError, ELFError
from .reader import SHT_NOBITS, STT_SECTION, Section
from .specs import PIN_BY_NAME, PIN_NONE, MapSpec, VariableSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from .reader import ELFFile

__all__ = ["DatasecVar", "datasec_vars", "datasec_layouts", "datasecs", "find_datasec", "parse_btf_maps", "parse_legacy_maps", "data_maps",
           "is_data_section", "BPF_F_RDONLY_PROG", "BPF_F_MMAPABLE", "BPF_F_INNER_MAP"]

BPF_F_RDONLY_PROG = 1 << 7
BPF_F_MMAPABLE = 1 << 10
BPF_F_INNER_MAP = 1 << 12
_PTR = 8
#: More than the kernel accepts for one array map value (KMALLOC_MAX_SIZE is 4 MiB with 4 KiB pages).
MAX_DATA_SECTION = 64 << 20


@dataclass(frozen=True)
class DatasecVar:
    """A variable of a DATASEC with its real offset (from the ELF symbol)."""

    name: str
    type_id: int  # the VAR's id
    offset: int
    size: int
    index: int    # position in the DATASEC


def is_data_section(name: str) -> bool:
    """Sections libbpf turns into global data maps."""
    return (name in (".data", ".rodata", ".bss") or name.startswith(".data.") or name.startswith(".rodata."))


def find_datasec(btf: Optional["BTF"], name: str) -> Optional[Datasec]:
    if btf is None:
        return None
    for t in btf.find_all(name, Kind.DATASEC) if name else ():
        if t.name == name:
            return t  # type: ignore[return-value]
    return None


def datasec_vars(btf: "BTF", sec: Datasec, elf: "ELFFile", section: Optional[Section]) -> list[DatasecVar]:
    """The DATASEC's variables with offsets fixed up from ELF symbols (clang writes 0)."""
    offsets: dict[str, int] = {}
    if section is not None:
        for sym in elf.symbols:
            if sym.shndx == section.index and sym.type != STT_SECTION and sym.name:
                offsets.setdefault(sym.name, sym.value)
    out = []
    for i, vs in enumerate(sec.vars):
        var = btf[vs.type_id]
        name = var.name
        off = offsets.get(name, vs.offset)
        size = vs.size
        if isinstance(var, Var) and size == 0:
            try:
                size = var.type.size
            except BTFError:
                size = 0
        out.append(DatasecVar(name, vs.type_id, off, size, i))
    return out


def datasecs(btf: "BTF") -> list[Datasec]:
    """Every DATASEC of ``btf``, found from the raw kind bytes (no decoding of the other types)."""
    h = btf.header
    words = np.frombuffer(btf.raw, dtype=("<" if h.byteorder == "little" else ">") + "u4",
                          count=h.type_len // 4, offset=h.types_pos)
    offsets = btf.index.offsets
    kinds = (words[offsets + 1] >> 24) & 0x1F if len(offsets) else np.zeros(0, dtype=np.uint32)
    return [btf[int(i) + btf.start_id] for i in np.nonzero(kinds == Kind.DATASEC)[0]]  # type: ignore[misc]


def datasec_layouts(elf: "ELFFile", btf: Optional["BTF"]) -> dict[str, tuple[int, dict[str, int]]]:
    """For each DATASEC backed by an ELF section: (section size, {variable name: offset}) -- the
    values clang leaves at zero in .BTF and libbpf fills in before loading the BTF."""
    out: dict[str, tuple[int, dict[str, int]]] = {}
    if btf is None:
        return out
    for t in datasecs(btf):
        sec = elf.section(t.name)
        if sec is None:
            continue
        out[t.name] = (sec.size, {v.name: v.offset for v in datasec_vars(btf, t, elf, sec)})
    return out


def _int_field(btf: "BTF", m_type: int, map_name: str, field: str) -> int:
    """``__uint(field, N)`` is ``int (*field)[N]``: N is the array's element count."""
    t = btf[m_type].skip_qualifiers()
    if not isinstance(t, Pointer):
        raise ELFError(f"map {map_name!r}: attribute {field!r} is not __uint() (expected a pointer, got {t.kind.name})")
    arr = t.type.resolve() if t.type is not None else None
    if not isinstance(arr, Array):
        raise ELFError(f"map {map_name!r}: attribute {field!r} is not __uint() (expected a pointer to an array)")
    return arr.nelems


def _parse_def(btf: "BTF", def_t: Struct, map_name: str, inner_allowed: bool) -> tuple[dict, Optional[dict]]:
    d: dict = {"type": 0, "key_size": 0, "value_size": 0, "max_entries": 0, "map_flags": 0, "numa_node": 0,
               "pinning": PIN_NONE, "map_extra": 0, "key_type_id": 0, "value_type_id": 0, "values_off": -1,
               "prog_array_values": False}
    inner: Optional[dict] = None
    members = list(def_t.members)
    for i, m in enumerate(members):
        name = m.name
        if name in ("type", "max_entries", "map_flags", "numa_node", "map_extra", "pinning"):
            d[name] = _int_field(btf, m.type_id, map_name, name)
        elif name in ("key_size", "value_size"):
            sz = _int_field(btf, m.type_id, map_name, name)
            if d[name] and d[name] != sz:
                raise ELFError(f"map {map_name!r}: conflicting {name} {d[name]} != {sz}")
            d[name] = sz
        elif name in ("key", "value"):
            t = btf[m.type_id]
            if not isinstance(t, Pointer):
                raise ELFError(f"map {map_name!r}: {name} attribute must be __type() (a pointer), got {t.kind.name}")
            try:
                sz = t.type.size
            except BTFError as exc:
                raise ELFError(f"map {map_name!r}: cannot size the {name} type: {exc}") from None
            key = f"{name}_size"
            if d[key] and d[key] != sz:
                raise ELFError(f"map {map_name!r}: conflicting {key} {d[key]} != {sz}")
            d[key] = sz
            d[f"{name}_type_id"] = t.type_id
        elif name == "values":
            mtype = d["type"]
            is_mim = mtype in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)
            if not inner_allowed:
                raise ELFError(f"map {map_name!r}: inner maps cannot have 'values' (nested map-in-map)")
            if i != len(members) - 1:
                raise ELFError(f"map {map_name!r}: 'values' must be the last attribute")
            if not is_mim and mtype != MapType.PROG_ARRAY:
                raise ELFError(f"map {map_name!r}: 'values' initialisers need a map-in-map or prog array type")
            if d["value_size"] and d["value_size"] != 4:
                raise ELFError(f"map {map_name!r}: value_size must be 4 with 'values', got {d['value_size']}")
            d["value_size"] = 4
            d["values_off"] = m.bit_offset // 8
            arr = btf[m.type_id]
            if not isinstance(arr, Array) or arr.nelems:
                raise ELFError(f"map {map_name!r}: 'values' must be a zero-length array of pointers")
            ptr = arr.elem_type.skip_qualifiers()
            if not isinstance(ptr, Pointer):
                raise ELFError(f"map {map_name!r}: 'values' elements must be pointers")
            target = ptr.type.skip_qualifiers()
            if mtype == MapType.PROG_ARRAY:
                if not isinstance(target, FuncProto):
                    raise ELFError(f"map {map_name!r}: prog array 'values' must point to function prototypes")
                d["prog_array_values"] = True
                continue
            if not isinstance(target, Struct):
                raise ELFError(f"map {map_name!r}: map-in-map 'values' must point to a map definition struct")
            inner, _ = _parse_def(btf, target, map_name + ".inner", False)
        else:
            # libbpf in non-strict mode ignores unknown attributes; strict (the default) refuses them
            raise ELFError(f"map {map_name!r}: unknown map attribute {name!r}")
    return d, inner


def _spec_from_def(name: str, d: dict, section: Section, offset: int) -> MapSpec:
    mtype: MapType | int
    try:
        mtype = MapType(d["type"])
    except ValueError:
        mtype = d["type"]
    pinning = d["pinning"]
    if pinning not in (PIN_NONE, PIN_BY_NAME):
        raise ELFError(f"map {name!r}: unsupported pinning {pinning} (0: none, 1: LIBBPF_PIN_BY_NAME)")
    return MapSpec(name=name, type=mtype, key_size=d["key_size"], value_size=d["value_size"],
                   max_entries=d["max_entries"], flags=d["map_flags"], numa_node=d["numa_node"], pinning=pinning,
                   map_extra=d["map_extra"], key_type_id=d["key_type_id"], value_type_id=d["value_type_id"],
                   section=section.name, section_index=section.index, section_offset=offset, origin="btf")


def parse_btf_maps(elf: "ELFFile", btf: Optional["BTF"], section: Section) -> tuple[list[MapSpec], dict[str, int]]:
    """The maps of ``.maps``; also {map name: byte offset of its 'values' array} for initialisers."""
    if btf is None:
        raise ELFError(f"{elf.source}: section '.maps' needs .BTF (compile with clang -g)")
    sec = find_datasec(btf, section.name)
    if sec is None:
        raise ELFError(f"{elf.source}: no DATASEC '.maps' in .BTF describing the BTF-defined maps")
    maps, values_at = [], {}
    for v in datasec_vars(btf, sec, elf, section):
        var = btf[v.type_id]
        if not isinstance(var, Var) or not v.name:
            raise ELFError(f"{elf.source}: .maps entry #{v.index} is not a named variable")
        if var.linkage != 1:  # BTF_VAR_GLOBAL_ALLOCATED
            raise ELFError(f"map {v.name!r}: static maps are not supported (make it a global variable)")
        def_t = var.type.resolve()
        if not isinstance(def_t, Struct):
            raise ELFError(f"map {v.name!r}: definition is a {def_t.kind.name}, expected a struct")
        if section.type != SHT_NOBITS and v.offset + def_t.size > section.size:
            raise ELFError(f"map {v.name!r}: definition at offset {v.offset} runs past the .maps section")
        d, inner = _parse_def(btf, def_t, v.name, True)
        spec = _spec_from_def(v.name, d, section, v.offset)
        if inner is not None:
            spec.inner = _spec_from_def(v.name + ".inner", inner, section, v.offset)
        if d["values_off"] >= 0:
            values_at[v.name] = v.offset + d["values_off"]
        maps.append(spec)
    return maps, values_at


_LEGACY = struct.Struct("<IIIII")


def parse_legacy_maps(elf: "ELFFile", section: Section) -> list[MapSpec]:
    """``struct bpf_map_def`` entries of a legacy ``maps`` section, named by their symbols."""
    syms = sorted((s for s in elf.symbols if s.shndx == section.index and s.type != STT_SECTION and s.name),
                  key=lambda s: s.value)
    if not syms:
        raise ELFError(f"{elf.source}: legacy 'maps' section has no map symbols")
    size = section.size // len(syms)
    if size < _LEGACY.size - 4 or section.size % len(syms):
        raise ELFError(f"{elf.source}: legacy 'maps' section of {section.size} bytes does not divide into "
                       f"{len(syms)} bpf_map_def entries")
    out = []
    for sym in syms:
        if sym.value + size > len(section.data):
            raise ELFError(f"{elf.source}: legacy map {sym.name!r} at offset {sym.value} runs past the section")
        raw = section.data[sym.value:sym.value + size] + bytes(max(0, _LEGACY.size - size))
        mtype, key, value, entries, flags = _LEGACY.unpack_from(raw, 0)
        if size > _LEGACY.size and any(section.data[sym.value + _LEGACY.size:sym.value + size]):
            raise ELFError(f"{elf.source}: legacy map {sym.name!r} uses bpf_map_def fields libbpf does not know")
        try:
            mt: MapType | int = MapType(mtype)
        except ValueError:
            mt = mtype
        out.append(MapSpec(name=sym.name, type=mt, key_size=key, value_size=value, max_entries=entries, flags=flags,
                           section=section.name, section_index=section.index, section_offset=sym.value,
                           origin="legacy"))
    return out


def data_maps(elf: "ELFFile", btf: Optional["BTF"]) -> tuple[list[MapSpec], dict[str, VariableSpec]]:
    """One array map per global data section, and its variables (from the DATASEC)."""
    maps: list[MapSpec] = []
    variables: dict[str, VariableSpec] = {}
    for sec in elf.sections:
        if not is_data_section(sec.name) or sec.size == 0:
            continue
        if sec.size > MAX_DATA_SECTION:
            raise ELFError(f"{elf.source}: section {sec.name!r} of {sec.size} bytes is larger than a BPF map value "
                           f"can be ({MAX_DATA_SECTION} bytes)")
        readonly = sec.name.startswith(".rodata")
        data = bytearray(sec.size) if sec.type == SHT_NOBITS else bytearray(sec.data)
        ds = find_datasec(btf, sec.name)
        spec = MapSpec(name=sec.name, type=MapType.ARRAY, key_size=4, value_size=sec.size, max_entries=1,
                       flags=BPF_F_RDONLY_PROG if readonly else 0, section=sec.name, section_index=sec.index,
                       origin="data", data=data, readonly=readonly, value_type_id=ds.id if ds is not None else 0)
        # always mmapable (libbpf 1.1 does the same), so live .data/.bss are read and written in place
        spec.flags |= BPF_F_MMAPABLE
        maps.append(spec)
        if ds is None or btf is None:
            continue
        for v in datasec_vars(btf, ds, elf, sec):
            var = btf[v.type_id]
            if not isinstance(var, Var):
                continue
            if v.offset + v.size > sec.size:
                raise ELFError(f"{elf.source}: variable {v.name!r} [{v.offset}, {v.offset + v.size}) runs past "
                               f"section {sec.name!r} ({sec.size} bytes)")
            variables.setdefault(v.name, VariableSpec(v.name, sec.name, sec.name, v.offset, v.size, var.type_id,
                                                      var.type, readonly))
    return maps, variables

