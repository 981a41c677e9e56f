"""``ObjectSpec``: an ELF BPF object parsed into editable specs, in libbpf's open order.

Open order (libbpf's ``bpf_object__open``): ELF sections and symbols, ``.BTF``/``.BTF.ext``, externs,
maps (``.maps``, legacy ``maps``, global data, ``.kconfig``), programs, then relocations. Nothing
here touches the kernel; :meth:`ObjectSpec.load` hands the spec to :mod:`corebpf.loader`.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ..errors import BTFError, CoreBPFError, ELFError
from .externs import collect_externs, kconfig_map
from .maps import data_maps, datasec_layouts, parse_btf_maps, parse_legacy_maps
from .programs import attach_ext_info, split_functions
from .reader import ELFFile
from .relocations import collect_map_initialisers, collect_relocations
from .specs import ExternSpec, MapSpec, ProgramSpec, VariableSpec, Variables

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from ..btf.ext import BTFExt
    from ..loader.object import Object

__all__ = ["ObjectSpec", "MissingLicenseWarning"]


class MissingLicenseWarning(UserWarning):
    """The object has no ``license`` section: GPL-only helpers will be refused by the verifier."""


@dataclass
class ObjectSpec:
    """Everything an object defines, before load. Edit freely, then :meth:`load`.

    ``programs`` are the entry programs by name, ``subprograms`` the ``.text`` functions, ``maps`` every
    map (BTF, legacy, global data as ``.data``/``.rodata``/``.bss``/``.kconfig``), ``variables`` the
    global variables (``spec.variables["x"] = 1`` sets the initial value through its BTF type),
    ``externs`` the ``__kconfig``/``__ksym`` externs by name.
    """

    name: str
    source: str
    license: str
    kern_version: int
    programs: dict[str, ProgramSpec]
    subprograms: dict[str, ProgramSpec]
    maps: dict[str, MapSpec]
    externs: dict[str, ExternSpec]
    btf: Optional["BTF"] = None
    btf_ext: Optional["BTFExt"] = None
    variable_specs: dict[str, VariableSpec] = field(default_factory=dict)
    btf_raw: bytes = b""
    datasec_layout: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)

    # ---- construction ----------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: "str | os.PathLike[str]") -> "ObjectSpec":
        """Parse the object at ``path`` (raises :class:`ELFError`/:class:`BTFError` for bad input)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ELFError(f"{p}: cannot read: {exc.strerror or exc}") from None
        return cls.from_bytes(data, name=_object_name(p.name), source=str(p))

    @classmethod
    def from_bytes(cls, data: "bytes | bytearray | memoryview", *, name: str = "", source: str = "<bytes>") -> "ObjectSpec":
        """Parse an object from memory. ``name`` (default: from ``source``) prefixes global data map names
        as libbpf does (``<name>.rodata``)."""
        try:
            default = _object_name(os.path.basename(source)) if source != "<bytes>" else "obj"
            return _parse(bytes(data), name or default, source)
        except (ELFError, BTFError):
            raise
        except CoreBPFError as exc:
            raise ELFError(f"{source}: {exc}") from None
        except (struct.error, IndexError, KeyError, ValueError, TypeError, UnicodeDecodeError, RecursionError,
                OverflowError, AttributeError) as exc:
            # a malformed object must never escape as a raw Python error
            raise ELFError(f"{source}: malformed object ({type(exc).__name__}: {exc})") from None

    # ---- editing -------------------------------------------------------------------------------

    @property
    def variables(self) -> Variables:
        """Global variables by name (read/write initial values, encoded through their BTF types)."""

        def buffers(map_name: str):
            buf = self.maps[map_name].data
            assert buf is not None

            def read(off: int, size: int) -> bytes:
                return bytes(buf[off:off + size])

            def write(off: int, raw: bytes) -> None:
                if map_name == ".kconfig":
                    raise TypeError("kconfig externs are filled from the kernel's config at load")
                buf[off:off + len(raw)] = raw

            return read, write

        return Variables(self.variable_specs, buffers)

    def copy(self) -> "ObjectSpec":
        """A deep copy (the BTF objects are shared: they are read-only)."""
        import copy

        memo = {}
        if self.btf is not None:
            memo[id(self.btf)] = self.btf
        if self.btf_ext is not None:
            memo[id(self.btf_ext)] = self.btf_ext
        for v in self.variable_specs.values():
            if v.type is not None:
                memo[id(v.type)] = v.type
        return copy.deepcopy(self, memo)

    # ---- loading ----------------------------------------------------------------------------

    def load(self, btf: Any = None, pin_root: "str | os.PathLike[str] | None" = None, **options: Any) -> "Object":
        """Load into the kernel (see :func:`corebpf.load` for the options)."""
        from ..loader import load_spec

        return load_spec(self, btf=btf, pin_root=pin_root, **options)

    def __repr__(self) -> str:
        return (f"<ObjectSpec {self.name!r} programs={list(self.programs)} maps={list(self.maps)} "
                f"license={self.license!r}>")


def _object_name(filename: str) -> str:
    """libbpf's object name: the file's base name up to the first dot."""
    return filename.split(".", 1)[0] or "obj"


def _parse(data: bytes, name: str, source: str) -> ObjectSpec:
    elf = ELFFile(data, source)

    license_sec = elf.section("license")
    if license_sec is None or not license_sec.data:
        warnings.warn(f"{source}: no 'license' section (char LICENSE[] SEC(\"license\") = \"GPL\"): programs load "
                      f"as non-GPL and the verifier refuses GPL-only helpers (bpf_probe_read*, bpf_trace_printk...)",
                      MissingLicenseWarning, stacklevel=3)
        license = ""
    else:
        license = license_sec.data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    kern_version = 0
    ver = elf.section("version")
    if ver is not None:
        if len(ver.data) != 4:
            raise ELFError(f"{source}: 'version' section is {len(ver.data)} bytes, expected 4")
        kern_version = struct.unpack("<I", ver.data)[0]

    btf = btf_ext = None
    line_records: dict[str, np.ndarray] = {}
    btf_raw = b""
    btf_sec = elf.section(".BTF")
    if btf_sec is not None:
        from ..btf import BTF

        btf_raw = btf_sec.data
        btf = BTF.from_bytes(btf_raw, name=name)
        btf.source = source
        ext_sec = elf.section(".BTF.ext")
        if ext_sec is not None:
            btf_ext, line_records = _parse_ext(ext_sec.data, btf)

    externs = collect_externs(elf, btf)

    maps: list[MapSpec] = []
    values_at: dict[str, int] = {}
    legacy = elf.section("maps")
    if legacy is not None and legacy.size:
        maps += parse_legacy_maps(elf, legacy)
    btf_maps = elf.section(".maps")
    if btf_maps is not None and btf_maps.size:
        found, values_at = parse_btf_maps(elf, btf, btf_maps)
        maps += found
    dmaps, variables = data_maps(elf, btf)
    maps += dmaps
    kmap, kvars = kconfig_map(externs, btf)
    if kmap is not None:
        maps.append(kmap)
        variables.update(kvars)
    names: dict[str, MapSpec] = {}
    for m in maps:
        if m.name in names:
            raise ELFError(f"{source}: two maps named {m.name!r}")
        names[m.name] = m

    funcs = split_functions(elf)
    if btf_ext is not None:
        attach_ext_info(funcs, btf_ext, line_records)
    collect_relocations(elf, funcs, maps, externs)
    collect_map_initialisers(elf, maps, values_at, funcs)

    programs: dict[str, ProgramSpec] = {}
    subprograms: dict[str, ProgramSpec] = {}
    for f in funcs:
        table = subprograms if f.is_subprog else programs
        if f.name in table:
            raise ELFError(f"{source}: two functions named {f.name!r}")
        table[f.name] = f
    return ObjectSpec(name=name, source=source, license=license, kern_version=kern_version, programs=programs,
                      subprograms=subprograms, maps=names, externs={e.name: e for e in externs.values()}, btf=btf,
                      btf_ext=btf_ext, variable_specs=variables, btf_raw=btf_raw,
                      datasec_layout=datasec_layouts(elf, btf))


def _parse_ext(data: bytes, btf: "BTF") -> tuple["BTFExt", dict[str, np.ndarray]]:
    """``.BTF.ext`` with section names resolved; line_info is read here as uint32 arrays (one row per
    record) instead of one object per line, since a loader only forwards those records to the kernel
    (``corebpf.btf.ext`` decodes them with their source text for tools that show them)."""
    from ..btf.ext import parse_btf_ext

    if len(data) < 24 or struct.unpack_from("<H", data, 0)[0] != 0xEB9F:
        ext = parse_btf_ext(data, None)  # raises the precise BTFError (magic, size, byte order)
        return ext, {}
    hdr_len = struct.unpack_from("<I", data, 4)[0]
    if hdr_len < 24 or hdr_len > len(data):
        return parse_btf_ext(data, None), {}
    li_off, li_len = struct.unpack_from("<II", data, 16)
    stripped = bytearray(data)
    struct.pack_into("<I", stripped, 20, 0)  # parse func_info and CO-RE records only
    ext = parse_btf_ext(bytes(stripped), None)
    if ext.byteorder != btf.byteorder:
        raise BTFError(".BTF.ext and .BTF differ in byte order")
    for table in (ext.func_info, ext.core_relos):
        renamed = {btf.string_at(int(key[1:])): recs for key, recs in table.items()}
        table.clear()
        table.update(renamed)
    if ext.core_relos:
        import dataclasses

        for name, recs in ext.core_relos.items():
            ext.core_relos[name] = [dataclasses.replace(r, access=btf.string_at(r.access_str_off)) for r in recs]
    return ext, _line_records(data, hdr_len + li_off, li_len, btf)


def _line_records(data: bytes, start: int, length: int, btf: "BTF") -> dict[str, np.ndarray]:
    """The line_info subsection: {section name: (n, 4) uint32 array of bpf_line_info records}."""
    out: dict[str, np.ndarray] = {}
    if length == 0:
        return out
    end = start + length
    if end > len(data) or length < 4:
        raise BTFError(f".BTF.ext line_info at offset {start}: {length} bytes run past the end ({len(data)})")
    rec_size = struct.unpack_from("<I", data, start)[0]
    if rec_size < 16 or rec_size % 4:
        raise BTFError(f".BTF.ext line_info at offset {start}: record size {rec_size} (need a multiple of 4 >= 16)")
    pos = start + 4
    while pos < end:
        if pos + 8 > end:
            raise BTFError(f".BTF.ext line_info at offset {pos}: truncated section header")
        name_off, count = struct.unpack_from("<II", data, pos)
        pos += 8
        if count == 0 or pos + count * rec_size > end:
            raise BTFError(f".BTF.ext line_info at offset {pos - 4}: {count} records of {rec_size} bytes do not fit "
                           f"the subsection ending at offset {end}")
        recs = np.frombuffer(data, dtype="<u4", count=count * rec_size // 4, offset=pos).reshape(count, -1)[:, :4]
        name = btf.string_at(name_off)
        out[name] = np.concatenate([out[name], recs]) if name in out else recs
        pos += count * rec_size
    return out
