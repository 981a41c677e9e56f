"""BTF: read any kernel's types fast, decode values by type, build and load BTF.

Public API (stable; other modules build on it)::

    from corebpf.btf import BTF, Kind

    btf = BTF.vmlinux()                     # running kernel's BTF, shared per process, index cached on disk
    mod = BTF.module("nf_conntrack")        # split BTF of a module, on top of BTF.vmlinux(), shared
    btf = BTF.from_file(path, base=None)    # raw BTF, ELF .BTF (objects, vmlinux images), BTFHub .btf.tar.xz
    btf = BTF.from_bytes(data, base=None)   # raw BTF blob (either byte order)
    btf = BTF.from_id(btf_id)               # a BTF object loaded in the kernel (module BTF split on vmlinux)
    BTF.module_names()                      # modules with BTF under /sys/kernel/btf

    t = btf[type_id]                        # a Type (decoded on first use, then kept); btf[0] is void
    len(btf); iter(btf)                     # the types this blob defines: ids btf.start_id .. btf.last_id
    btf.all_types()                         # ... including the base BTF's for split BTF
    btf.find("task_struct", Kind.STRUCT)    # by essential name (``___flavour`` stripped); KeyError if none
    btf.find_all("task_struct")             # every match, base first; btf.find_id(...) -> id or -1
    btf.kind_of(id), btf.name_of(id)        # without decoding the type
    btf.string_at(offset)                   # string section lookup (split BTF continues the base's)
    btf.raw (bytes), btf.buffer (memoryview, no copy), btf.header, btf.byteorder, btf.base,
    btf.start_id, btf.last_id, btf.pointer_size, btf.from_cache

Types (``corebpf.btf.types``), all with ``.kind`` (:class:`Kind`), ``.name``, ``.id``, ``.btf``,
``.size`` and ``.alignment`` (bytes; BTFError for sizeless kinds), ``.resolve()`` (skip typedefs,
const/volatile/restrict and type tags), ``.skip_qualifiers()``, ``.essential_name``,
``.format_c(declarator="")`` / ``.c_declaration`` (one type as C: ``int (*)(void *)``,
``struct task_struct *``, ``char comm[16]``)::

    Void, Int(.encoding .signed .bits .offset .is_char .is_bool), Float,
    Pointer(.type_id .type/.target), Typedef, Const, Volatile, Restrict, TypeTag (all Qualifier/ref: .type_id .type),
    Array(.elem_type_id .elem_type .index_type_id .nelems),
    Struct/Union (Composite: .members [Member(name, type_id, bit_offset, bitfield_size) .type .offset
                  .is_bitfield .bit_size], .member(name), .field("a.b") -> (bit offset, Member), .kind_flag),
    Enum (ENUM and ENUM64: .values [EnumValue(name, value)], .signed, .value_of(), .name_of()),
    Fwd(.is_union), Func(.type_id .proto .linkage: Linkage), FuncProto(.return_type_id .return_type
    .params [Param(name, type_id) .type] .variadic), Var(.type_id .linkage), Datasec(.vars
    [VarSecinfo(type_id, offset, size)]), DeclTag(.type_id .component_idx)

Values (``corebpf.btf.values``)::

    decode(t, data, *, offset=0, chars="str"|"bytes"|"raw") -> int | bool | float | EnumMember | str |
        bytes | list | StructValue        (StructValue: dict with attribute access; anonymous members flattened)
    encode(t, value) -> bytes             (missing members are zero; enums by value or name)
    numpy_dtype(t) -> numpy.dtype         (exact offsets/itemsize; bitfields in dtype.metadata["bitfields"])
    EnumMember (int with .name), BTFValueError (CoreBPFError, ValueError)

``.BTF.ext`` (``corebpf.btf.ext``): ``BTFExt.from_bytes(data, btf)`` / ``BTFExt.from_elf(path)`` ->
``(BTF, BTFExt)``; ``.func_info`` / ``.line_info`` / ``.core_relos``: dict section name -> list of
``FuncInfo(insn_off, type_id)``, ``LineInfo(insn_off, ..., line, col, file_name, line_text)``,
``CoreRelo(insn_off, type_id, access_str_off, kind: CoreReloKind, access)`` (``insn_off`` in bytes).

Building (``corebpf.btf.builder``): ``BTFBuilder(byteorder=..., base=None)`` with ``add_int``,
``add_float``, ``add_ptr``, ``add_array``, ``add_struct``/``add_union`` (members ``(name, type_id,
bit_offset[, bitfield_size])``), ``add_enum``/``add_enum64``, ``add_fwd``, ``add_typedef``,
``add_const``/``add_volatile``/``add_restrict``/``add_type_tag``, ``add_func``, ``add_func_proto``,
``add_var``, ``add_datasec``, ``add_decl_tag``, ``add_raw``, ``copy_type(t)`` (a type and its
closure from another BTF); ``.encode()`` -> bytes, ``.to_btf()``, ``.load()``. ``load_btf(data)`` ->
``LoadedBTF`` (``.fd``, ``.id``, context manager): BPF_BTF_LOAD without a log, then with one on
failure, raising ``BTFLoadError`` (a BPFError and a BTFError; ``.log`` is the kernel's log).

Sanitising (``corebpf.btf.sanitize``): ``sanitize(btf_or_bytes, BTFFeatures(...)) -> bytes`` rewrites
DECL_TAG, TYPE_TAG, ENUM64 (and signed ENUM), FLOAT, DATASEC/VAR, FUNC/FUNC_PROTO and FUNC linkage the
way libbpf does; ``probe_features()`` asks the running kernel; ``BTFFeatures.none()``.

Index cache (``corebpf.btf.index_cache``): used by ``from_file`` on raw BTF; ``cache_dir()``,
``clear()``, ``wait()``, ``stats`` (hits/misses/stores/store_errors).

Errors: malformed input raises :class:`corebpf.errors.BTFError` naming the byte offset.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .types import (
    Array, Composite, Const, Datasec, DeclTag, Enum, EnumValue, Float, Func, FuncProto, Fwd, Int,
    IntEncoding, Kind, Linkage, Member, Param, Pointer, Qualifier, Restrict, Struct, Type, Typedef, TypeTag,
    Union, Var, VarSecinfo, Void, Volatile, essential_name,
)

__all__ = [
    "BTF", "Header", "parse_header", "Kind", "Linkage", "IntEncoding", "Type", "Void", "Int", "Float",
    "Pointer", "Array", "Composite", "Struct", "Union", "Member", "Enum", "EnumValue", "Fwd", "Typedef",
    "Qualifier", "Const", "Volatile", "Restrict", "TypeTag", "Func", "FuncProto", "Param", "Var", "Datasec",
    "VarSecinfo", "DeclTag", "essential_name",
    # lazily imported
    "BTFExt", "BTFBuilder", "BTFLoadError", "LoadedBTF", "load_btf", "decode", "encode", "numpy_dtype",
    "EnumMember", "StructValue", "BTFValueError", "sanitize", "BTFFeatures", "probe_features",
]

# The reader (and with it numpy) loads on first use, so numpy-free submodules such as the C dumper
# import cheaply.
_LAZY = {
    "BTF": "reader", "Header": "reader", "parse_header": "reader",
    "BTFExt": "ext", "BTFBuilder": "builder", "BTFLoadError": "builder", "LoadedBTF": "builder",
    "load_btf": "builder", "decode": "values", "encode": "values", "numpy_dtype": "values",
    "EnumMember": "values", "StructValue": "values", "BTFValueError": "values",
    "sanitize": "sanitize", "BTFFeatures": "sanitize", "probe_features": "sanitize",
}


__getattr__ = lazy_exports(__name__, globals(), _LAZY)
