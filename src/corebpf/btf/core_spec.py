"""CO-RE relocation kinds and access specs: parse an access string against a BTF, and print it.

A relocation names a root type and an access string such as ``"0:1:2:3"``. For field relocations
the first number indexes the root as if it were an array (``&s[0]``), each following number is a
member index (structs/unions) or an element index (arrays). Anonymous members are walked through
but only named members and array indices are "high-level" accessors: those are what must match in
the target. Enum relocations use one number, the enumerator's index. Type relocations use ``"0"``.

The rules are libbpf's (``bpf_core_parse_spec`` / ``bpf_core_format_spec`` in relo_core.c).
"""

from __future__ import annotations

import enum
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..errors import BTFError
from .types import Array, Composite, Enum, Kind, Type

if TYPE_CHECKING:  # pragma: no cover
    from .reader import BTF

__all__ = [
    "CoreReloKind", "Accessor", "Spec", "SpecError", "parse_spec", "skip_mods", "resolve_size", "kind_str",
    "format_spec", "describe_spec", "MAX_SPEC_LEN",
]

#: libbpf's BPF_CORE_SPEC_MAX_LEN: how deep an access string may nest.
MAX_SPEC_LEN = 64


class CoreReloKind(enum.IntEnum):
    """``enum bpf_core_relo_kind`` (the ``kind`` of a ``.BTF.ext`` CO-RE record)."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12

    @property
    def short(self) -> str:
        """libbpf's short name (``byte_off``, ``field_exists``, ``enumval_value``...)."""
        return _SHORT[self]

    @property
    def is_field(self) -> bool:
        """A field relocation (offset, size, exists, signed, shifts): the access string walks members."""
        return self <= CoreReloKind.FIELD_RSHIFT_U64

    @property
    def is_type(self) -> bool:
        """A type relocation (ids, exists, size, matches): the access string is ``"0"``."""
        return self in (CoreReloKind.TYPE_ID_LOCAL, CoreReloKind.TYPE_ID_TARGET, CoreReloKind.TYPE_EXISTS,
                        CoreReloKind.TYPE_SIZE, CoreReloKind.TYPE_MATCHES)

    @property
    def is_enumval(self) -> bool:
        """An enum value relocation: the access string is the enumerator's index."""
        return self in (CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE)


_SHORT = {
    CoreReloKind.FIELD_BYTE_OFFSET: "byte_off", CoreReloKind.FIELD_BYTE_SIZE: "byte_sz",
    CoreReloKind.FIELD_EXISTS: "field_exists", CoreReloKind.FIELD_SIGNED: "signed",
    CoreReloKind.FIELD_LSHIFT_U64: "lshift_u64", CoreReloKind.FIELD_RSHIFT_U64: "rshift_u64",
    CoreReloKind.TYPE_ID_LOCAL: "local_type_id", CoreReloKind.TYPE_ID_TARGET: "target_type_id",
    CoreReloKind.TYPE_EXISTS: "type_exists", CoreReloKind.TYPE_MATCHES: "type_matches",
    CoreReloKind.TYPE_SIZE: "type_size", CoreReloKind.ENUMVAL_EXISTS: "enumval_exists",
    CoreReloKind.ENUMVAL_VALUE: "enumval_value",
}


class SpecError(BTFError):
    """An access string that does not fit the types it names (the object's BTF is inconsistent)."""


@dataclass
class Accessor:
    """One high-level step: a named member (``name`` set, ``type_id`` the struct/union), an array
    element (``name`` None, ``type_id`` the element type) or an enumerator (``name`` its name)."""

    type_id: int
    idx: int
    name: Optional[str] = None


@dataclass
class Spec:
    """An access spec resolved against one BTF: high-level accessors, the raw indices and the bit
    offset they reach from the root. Type relocations have no accessors."""

    btf: "BTF"
    root_type_id: int
    kind: CoreReloKind
    accessors: list[Accessor] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    bit_offset: int = 0


def skip_mods(btf: "BTF", type_id: int) -> tuple[Type, int]:
    """Skip typedefs, const/volatile/restrict and type tags: (type, its id)."""
    t = btf[type_id].resolve()
    return t, t.id


_SIZES: "weakref.WeakKeyDictionary[BTF, dict[int, int]]" = weakref.WeakKeyDictionary()


_last_sizes: tuple[object, dict[int, int]] = (None, {})


def _sizes_of(btf: "BTF") -> dict[int, int]:
    global _last_sizes
    last, per = _last_sizes
    if last is not btf:  # consecutive lookups are mostly in the same BTF: skip the weak dict
        found = _SIZES.get(btf)
        if found is None:
            found = _SIZES[btf] = {}
        per = found
        _last_sizes = (btf, per)
    return per


def resolve_size(btf: "BTF", type_id: int) -> int:
    """``btf__resolve_size``: the byte size of a type, following typedefs/modifiers and arrays."""
    per = _sizes_of(btf)
    size = per.get(type_id)
    if size is not None:
        return size
    t = btf[type_id]
    try:
        size = t.size
    except BTFError as e:
        raise SpecError(f"type [{type_id}] {t.kind.name.lower()} has no size: {e}") from None
    if t.resolve().kind == Kind.UNKN:
        raise SpecError(f"type [{type_id}] is void: it has no size")
    per[type_id] = size
    return size


_KIND_STR = {
    Kind.UNKN: "void", Kind.INT: "int", Kind.PTR: "ptr", Kind.ARRAY: "array", Kind.STRUCT: "struct",
    Kind.UNION: "union", Kind.ENUM: "enum", Kind.FWD: "fwd", Kind.TYPEDEF: "typedef", Kind.VOLATILE: "volatile",
    Kind.CONST: "const", Kind.RESTRICT: "restrict", Kind.FUNC: "func", Kind.FUNC_PROTO: "func_proto",
    Kind.VAR: "var", Kind.DATASEC: "datasec", Kind.FLOAT: "float", Kind.DECL_TAG: "decl_tag",
    Kind.TYPE_TAG: "type_tag", Kind.ENUM64: "enum64",
}


def kind_str(t: Type) -> str:
    """libbpf's lower-case kind name of a type (``struct``, ``enum64``, ``typedef``...)."""
    if isinstance(t, Enum):
        return "enum64" if t.kind == Kind.ENUM64 else "enum"
    return _KIND_STR.get(t.kind, "unknown")


def parse_access(access: str) -> list[int]:
    """``"0:1:2"`` -> ``[0, 1, 2]`` (raises :class:`SpecError` on anything else)."""
    if not access or access.startswith(":"):
        raise SpecError(f"invalid CO-RE access string {access!r}")
    out: list[int] = []
    for part in access.split(":"):
        if not part.isdigit():  # also refuses signs and empty parts ("0::1")
            raise SpecError(f"invalid CO-RE access string {access!r}")
        if len(out) == MAX_SPEC_LEN:
            raise SpecError(f"CO-RE access string {access!r} nests deeper than {MAX_SPEC_LEN}")
        out.append(int(part))
    return out


def is_flex_array(btf: "BTF", prev: Accessor, arr: Array) -> bool:
    """An array of 0 elements that is the last member of the struct the previous accessor named."""
    if prev.name is None or arr.nelems > 0:
        return False
    t = btf[prev.type_id]
    return isinstance(t, Composite) and prev.idx == len(t.members) - 1


def parse_spec(btf: "BTF", type_id: int, access: str, kind: CoreReloKind) -> Spec:
    """Resolve a relocation's access string against the local BTF (libbpf's ``bpf_core_parse_spec``)."""
    try:
        return _parse_spec(btf, type_id, access, kind)
    except SpecError:
        raise
    except (BTFError, KeyError, IndexError) as e:
        raise SpecError(f"CO-RE access {access!r} on type [{type_id}]: {e}") from None


def _parse_spec(btf: "BTF", type_id: int, access: str, kind: CoreReloKind) -> Spec:
    spec = Spec(btf, type_id, kind)
    if kind.is_type:
        if access != "0":
            raise SpecError(f"type-based CO-RE relocation with access string {access!r} (must be \"0\")")
        return spec
    spec.raw = raw = parse_access(access)
    t, tid = skip_mods(btf, type_id)
    first = raw[0]
    if kind.is_enumval:
        if not isinstance(t, Enum) or len(raw) > 1 or first >= len(t.values):
            raise SpecError(f"enum CO-RE relocation {access!r} does not name an enumerator of type [{type_id}]")
        spec.accessors.append(Accessor(tid, first, t.values[first].name))
        return spec
    if not kind.is_field:
        raise SpecError(f"unknown CO-RE relocation kind {int(kind)}")
    spec.accessors.append(Accessor(tid, first))
    spec.bit_offset = first * resolve_size(btf, tid) * 8
    for i in range(1, len(raw)):
        t, tid = skip_mods(btf, tid)
        idx = raw[i]
        if isinstance(t, Composite):
            if idx >= len(t.members):
                raise SpecError(f"CO-RE access {access!r}: member #{idx} of {t.format_c()} does not exist")
            m = t.members[idx]
            spec.bit_offset += m.bit_offset
            if m.name:
                spec.accessors.append(Accessor(tid, idx, m.name))
            tid = m.type_id
        elif isinstance(t, Array):
            elem, eid = skip_mods(btf, t.elem_type_id)
            if not is_flex_array(btf, spec.accessors[-1], t) and idx >= t.nelems:
                raise SpecError(f"CO-RE access {access!r}: index {idx} is past the end of {t.format_c()}")
            spec.accessors.append(Accessor(eid, idx))
            spec.bit_offset += idx * resolve_size(btf, eid) * 8
            tid = eid
        else:
            raise SpecError(f"CO-RE access {access!r} (at index {i}) reaches type [{tid}] of kind "
                            f"{kind_str(t)}, not a struct, union or array")
    return spec


def _type_label(btf: "BTF", type_id: int) -> str:
    t = btf[type_id]
    return f"{kind_str(t)} {t.name or '<anon>'}"


def format_spec(spec: Spec) -> str:
    """libbpf's spec text: ``<byte_off> [7] struct inode.i_atime (0:3 @ offset 24)``."""
    out = f"<{spec.kind.short}> [{spec.root_type_id}] {_type_label(spec.btf, spec.root_type_id)}"
    if spec.kind.is_type:
        return out
    if spec.kind.is_enumval:
        t, _ = skip_mods(spec.btf, spec.root_type_id)
        assert isinstance(t, Enum)
        v = t.values[spec.raw[0]]
        value = v.value
        if t.kind == Kind.ENUM and not t.signed:
            value &= 0xFFFFFFFF
        elif t.kind == Kind.ENUM64 and not t.signed:
            value &= (1 << 64) - 1
        return f"{out}::{v.name} = {value}"
    return f"{out}{_path(spec)} ({':'.join(map(str, spec.raw))} @ offset {_offset(spec.bit_offset)})"


def _path(spec: Spec) -> str:
    parts = []
    for i, acc in enumerate(spec.accessors):
        if acc.name is not None:
            parts.append("." + acc.name)
        elif i > 0 or acc.idx > 0:
            parts.append(f"[{acc.idx}]")
    return "".join(parts)


def _offset(bit_offset: int) -> str:
    return f"{bit_offset // 8}.{bit_offset % 8}" if bit_offset % 8 else str(bit_offset // 8)


def describe_spec(spec: Spec) -> str:
    """The short C-like form: ``struct inode.i_atime``, ``struct s[1].a[2]``, ``enum e::V``, ``struct foo``."""
    t = spec.btf[spec.root_type_id]
    head = f"{kind_str(t)} {t.name or '<anon>'}"
    if spec.kind.is_type:
        return head
    if spec.kind.is_enumval:
        return f"{head}::{spec.accessors[0].name}"
    return head + _path(spec)
