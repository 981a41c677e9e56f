"""The BTF type model: one small class per BTF kind.

Type objects are light views decoded on first use by :class:`corebpf.btf.BTF`. They refer to other
types by id (``type_id``) and resolve them through the BTF they came from (``.type``/``.target``),
so decoding one type never decodes the whole graph.

Sizes and alignment follow the C ABI rules the kernel and libbpf use: a typedef or qualifier has
the size of what it names, an array ``nelems * sizeof(elem)``, a pointer the BTF's pointer size.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Iterator, NamedTuple, Optional

from ..errors import BTFError

if TYPE_CHECKING:  # pragma: no cover
    from .reader import BTF

__all__ = [
    "Kind", "Linkage", "IntEncoding", "Type", "Void", "Int", "Pointer", "Array", "Composite", "Struct",
    "Union", "Member", "Enum", "EnumValue", "Fwd", "Typedef", "Volatile", "Const", "Restrict", "TypeTag",
    "Qualifier", "Func", "FuncProto", "Param", "Var", "Datasec", "VarSecinfo", "Float", "DeclTag",
    "essential_name", "MAX_RESOLVE_DEPTH",
]

#: How many typedef/qualifier/array hops we follow before calling the BTF cyclic (libbpf uses 32).
MAX_RESOLVE_DEPTH = 32


class Kind(enum.IntEnum):
    """BTF_KIND_* values."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


class Linkage(enum.IntEnum):
    """Linkage of a FUNC (``BTF_FUNC_*``) or VAR (``BTF_VAR_*``); the values coincide."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class IntEncoding(enum.IntFlag):
    """BTF_INT_* encoding bits of an INT."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


def essential_name(name: str) -> str:
    """The name without a CO-RE ``___flavour`` suffix, the way libbpf matches types.

    The suffix starts at the last ``X___Y`` where neither X nor Y is ``_``: ``task_struct___v1``
    -> ``task_struct``; ``__u32`` and ``a____b`` stay as they are.
    """
    i = name.rfind("___")
    while i > 0:
        if name[i - 1] != "_" and i + 3 < len(name) and name[i + 3] != "_":
            return name[:i]
        i = name.rfind("___", 0, i + 2)
    return name


def _scalar_alignment(size: int, btf: "Optional[BTF]") -> int:
    """C ABI alignment of an integer/float of ``size`` bytes: its size up to the pointer size, except
    that 16-byte types (``__int128``, ``long double``) are 16-aligned on 64-bit targets, as clang
    and the x86-64/arm64 ABIs have it (libbpf's ``btf__align_of`` says 8 there)."""
    ptr = btf.pointer_size if btf is not None else 8
    if size == 16 and ptr == 8:
        return 16
    return max(1, min(size, ptr))


class Type:
    """Base of every BTF type.

    Attributes:
        btf: the :class:`~corebpf.btf.BTF` the type belongs to.
        id: its type id (0 is void).
        name: its name ('' when anonymous).
    """

    __slots__ = ("btf", "id", "name")
    kind: Kind = Kind.UNKN

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str) -> None:
        self.btf = btf
        self.id = type_id
        self.name = name

    # -- identity ---------------------------------------------------------------------------------
    @property
    def essential_name(self) -> str:
        """The name with a ``___flavour`` suffix stripped."""
        return essential_name(self.name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.id}] {self.format_c()!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Type) and other.btf is self.btf and other.id == self.id

    def __hash__(self) -> int:
        return hash((id(self.btf), self.id))

    def _get(self, type_id: int) -> "Type":
        if self.btf is None:
            if type_id == 0:
                return VOID
            raise BTFError(f"type [{self.id}] refers to type {type_id} but has no BTF to look it up in")
        return self.btf[type_id]

    # -- layout -----------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """``sizeof`` this type in bytes (raises :class:`BTFError` for types without a size)."""
        return self._size_at(0)

    @property
    def alignment(self) -> int:
        """``_Alignof`` this type in bytes (1 for packed structs)."""
        return self._align_at(0)

    def _what(self) -> str:
        return "void" if self.id == 0 else f"{self.kind.name} type [{self.id}] {self.name!r}"

    def _size_at(self, depth: int) -> int:
        raise BTFError(f"{self._what()} has no size")

    def _align_at(self, depth: int) -> int:
        raise BTFError(f"{self._what()} has no alignment")

    def _deeper(self, depth: int) -> int:
        if depth >= MAX_RESOLVE_DEPTH:
            raise BTFError(f"type [{self.id}]: types nest deeper than {MAX_RESOLVE_DEPTH} levels (a loop?)")
        return depth + 1

    def resolve(self) -> "Type":
        """This type with typedefs, qualifiers (const/volatile/restrict) and type tags skipped."""
        t: Type = self
        for _ in range(MAX_RESOLVE_DEPTH):
            if not isinstance(t, (Typedef, Qualifier)):
                return t
            t = t.type
        raise BTFError(f"type [{self.id}]: typedef/qualifier chain longer than {MAX_RESOLVE_DEPTH} (a loop?)")

    def skip_qualifiers(self) -> "Type":
        """This type with only qualifiers and type tags skipped (typedefs kept)."""
        t: Type = self
        for _ in range(MAX_RESOLVE_DEPTH):
            if not isinstance(t, Qualifier):
                return t
            t = t.type
        raise BTFError(f"type [{self.id}]: qualifier chain longer than {MAX_RESOLVE_DEPTH} (a loop?)")

    # -- C ----------------------------------------------------------------------------------------
    def format_c(self, declarator: str = "") -> str:
        """This type as a C type name or declaration of ``declarator``.

        ``int (*)(void *)``, ``struct task_struct *``, ``char comm[16]``, ``const char *const p``.
        Named structs/unions/enums print as references (``struct foo``), not their bodies.
        """
        from .cdecl import format_c

        return format_c(self, declarator)

    @property
    def c_declaration(self) -> str:
        """``format_c()`` of the type alone, e.g. ``struct task_struct *``."""
        return self.format_c()

    def __str__(self) -> str:
        return self.format_c()


class Void(Type):
    """The void type (id 0)."""

    __slots__ = ()
    kind = Kind.UNKN

    def __init__(self, btf: Optional["BTF"] = None) -> None:
        super().__init__(btf, 0, "")


VOID = Void()


class Int(Type):
    """BTF_KIND_INT: an integer (or char/bool) of ``size`` bytes; ``bits``/``offset`` for legacy bitfields."""

    __slots__ = ("_size", "encoding", "bits", "offset")
    kind = Kind.INT

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, size: int, encoding: int, offset: int,
                 bits: int) -> None:
        super().__init__(btf, type_id, name)
        self._size = size
        self.encoding = IntEncoding(encoding & 7)
        self.offset = offset
        self.bits = bits

    def _size_at(self, depth: int) -> int:
        return self._size

    def _align_at(self, depth: int) -> int:
        return _scalar_alignment(self._size, self.btf)

    @property
    def signed(self) -> bool:
        """True for SIGNED-encoded ints."""
        return bool(self.encoding & IntEncoding.SIGNED)

    @property
    def is_char(self) -> bool:
        """True for char types (CHAR encoding, or named char/signed char/unsigned char)."""
        return bool(self.encoding & IntEncoding.CHAR) or self.name in ("char", "signed char", "unsigned char")

    @property
    def is_bool(self) -> bool:
        """True for BOOL-encoded ints (``_Bool``)."""
        return bool(self.encoding & IntEncoding.BOOL)


class Float(Type):
    """BTF_KIND_FLOAT: a floating point type of ``size`` bytes."""

    __slots__ = ("_size",)
    kind = Kind.FLOAT

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, size: int) -> None:
        super().__init__(btf, type_id, name)
        self._size = size

    def _size_at(self, depth: int) -> int:
        return self._size

    def _align_at(self, depth: int) -> int:
        return _scalar_alignment(self._size, self.btf)


class _Ref(Type):
    """A type that names one other type through ``type_id``."""

    __slots__ = ("type_id",)

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, ref: int) -> None:
        super().__init__(btf, type_id, name)
        self.type_id = ref

    @property
    def type(self) -> Type:
        """The type referred to."""
        return self._get(self.type_id)


class Pointer(_Ref):
    """BTF_KIND_PTR: a pointer to ``type``."""

    __slots__ = ()
    kind = Kind.PTR

    @property
    def target(self) -> Type:
        """The pointed-to type (same as ``.type``)."""
        return self.type

    def _size_at(self, depth: int) -> int:
        return self.btf.pointer_size if self.btf else 8

    def _align_at(self, depth: int) -> int:
        return self._size_at(depth)


class Typedef(_Ref):
    """BTF_KIND_TYPEDEF: ``typedef <type> name``."""

    __slots__ = ()
    kind = Kind.TYPEDEF

    def _size_at(self, depth: int) -> int:
        return self.type._size_at(self._deeper(depth))

    def _align_at(self, depth: int) -> int:
        return self.type._align_at(self._deeper(depth))


class Qualifier(_Ref):
    """Base of const/volatile/restrict and type tags: same layout as ``type``."""

    __slots__ = ()

    def _size_at(self, depth: int) -> int:
        return self.type._size_at(self._deeper(depth))

    def _align_at(self, depth: int) -> int:
        return self.type._align_at(self._deeper(depth))


class Volatile(Qualifier):
    """BTF_KIND_VOLATILE."""

    __slots__ = ()
    kind = Kind.VOLATILE


class Const(Qualifier):
    """BTF_KIND_CONST."""

    __slots__ = ()
    kind = Kind.CONST


class Restrict(Qualifier):
    """BTF_KIND_RESTRICT."""

    __slots__ = ()
    kind = Kind.RESTRICT


class TypeTag(Qualifier):
    """BTF_KIND_TYPE_TAG: ``__attribute__((btf_type_tag(name)))`` on ``type``."""

    __slots__ = ()
    kind = Kind.TYPE_TAG


class Array(Type):
    """BTF_KIND_ARRAY: ``nelems`` elements of ``elem_type_id`` indexed by ``index_type_id``."""

    __slots__ = ("elem_type_id", "index_type_id", "nelems")
    kind = Kind.ARRAY

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, elem: int, index: int, nelems: int) -> None:
        super().__init__(btf, type_id, name)
        self.elem_type_id = elem
        self.index_type_id = index
        self.nelems = nelems

    @property
    def type_id(self) -> int:
        """Alias of ``elem_type_id`` (what the array refers to)."""
        return self.elem_type_id

    @property
    def elem_type(self) -> Type:
        """The element type."""
        return self._get(self.elem_type_id)

    type = elem_type

    @property
    def index_type(self) -> Type:
        """The index type (an INT, usually ``__ARRAY_SIZE_TYPE__``)."""
        return self._get(self.index_type_id)

    def _size_at(self, depth: int) -> int:
        return self.nelems * self.elem_type._size_at(self._deeper(depth))

    def _align_at(self, depth: int) -> int:
        return self.elem_type._align_at(self._deeper(depth))


class Member(NamedTuple):
    """A struct/union member. ``bitfield_size`` is 0 unless the member is a bitfield."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int
    btf: object = None

    @property
    def type(self) -> Type:
        """The type ``type_id`` names."""
        return self.btf[self.type_id] if self.btf is not None else VOID  # type: ignore[index]

    @property
    def offset(self) -> int:
        """Byte offset (bit offset // 8)."""
        return self.bit_offset // 8

    @property
    def is_bitfield(self) -> bool:
        """True for kind_flag bitfields and for legacy ones (an INT member with fewer bits than its size)."""
        if self.bitfield_size:
            return True
        t = self.type.resolve()
        return isinstance(t, Int) and (t.bits != t.size * 8 or t.offset != 0)

    @property
    def bit_size(self) -> int:
        """Width in bits: the bitfield size, or the legacy INT bits, or ``8 * sizeof(type)``."""
        if self.bitfield_size:
            return self.bitfield_size
        t = self.type.resolve()
        if isinstance(t, Int) and (t.bits != t.size * 8 or t.offset != 0):
            return t.bits
        return 8 * self.type.size

    @property
    def effective_bit_offset(self) -> int:
        """Bit offset including a legacy INT bit offset."""
        t = self.type.resolve()
        if not self.bitfield_size and isinstance(t, Int):
            return self.bit_offset + t.offset
        return self.bit_offset

    def __repr__(self) -> str:
        bf = f":{self.bitfield_size}" if self.bitfield_size else ""
        return f"Member({self.name!r}{bf} @bit {self.bit_offset}, type {self.type_id})"


class Composite(Type):
    """Base of STRUCT and UNION: ``size`` bytes, ``members`` with bit offsets."""

    __slots__ = ("_size", "members", "kind_flag")

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, size: int, members: list[Member],
                 kind_flag: bool = False) -> None:
        super().__init__(btf, type_id, name)
        self._size = size
        self.members = members
        self.kind_flag = kind_flag

    def _size_at(self, depth: int) -> int:
        return self._size

    def _align_at(self, depth: int) -> int:
        align = 1
        depth = self._deeper(depth)
        for m in self.members:
            a = m.type._align_at(depth)
            if a > align:
                align = a
            # a member that is not at its natural alignment means the struct is packed
            if not m.bitfield_size and not m.is_bitfield and m.bit_offset % (8 * a):
                return 1
        if self._size % align:
            return 1
        return align

    def member(self, name: str) -> Member:
        """The member called ``name`` (KeyError if absent). Does not look into anonymous members."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"{self.format_c()} has no member {name!r}")

    def field(self, path: str) -> tuple[int, Member]:
        """Bit offset and member for a dotted path, looking through anonymous structs/unions and arrays
        are not indexed: ``"se.vruntime"`` -> (bit offset from the start of this type, member)."""
        base = 0
        t: Type = self
        found: Optional[Member] = None
        for part in path.split("."):
            t = t.resolve()
            if not isinstance(t, Composite):
                raise KeyError(f"{path!r}: {t.format_c()} is not a struct or union")
            hit = t._find_member(part)
            if hit is None:
                raise KeyError(f"{t.format_c()} has no member {part!r}")
            off, found = hit
            base += off
            t = found.type
        assert found is not None
        return base, found

    def _find_member(self, name: str, depth: int = 0) -> Optional[tuple[int, Member]]:
        for m in self.members:
            if m.name == name:
                return m.bit_offset, m
        if depth >= MAX_RESOLVE_DEPTH:
            return None
        for m in self.members:
            if not m.name:
                inner = m.type.resolve()
                if isinstance(inner, Composite):
                    hit = inner._find_member(name, depth + 1)
                    if hit is not None:
                        return m.bit_offset + hit[0], hit[1]
        return None

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)


class Struct(Composite):
    """BTF_KIND_STRUCT."""

    __slots__ = ()
    kind = Kind.STRUCT


class Union(Composite):
    """BTF_KIND_UNION."""

    __slots__ = ()
    kind = Kind.UNION


class EnumValue(NamedTuple):
    """One enumerator."""

    name: str
    value: int


class Enum(Type):
    """BTF_KIND_ENUM and BTF_KIND_ENUM64 (``kind`` tells which); ``signed`` from the kind_flag."""

    __slots__ = ("_size", "values", "signed", "kind")

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, size: int, values: list[EnumValue],
                 signed: bool, kind: Kind = Kind.ENUM) -> None:
        super().__init__(btf, type_id, name)
        self._size = size
        self.values = values
        self.signed = signed
        self.kind = kind  # type: ignore[misc]

    def _size_at(self, depth: int) -> int:
        return self._size

    def _align_at(self, depth: int) -> int:
        return max(1, min(self._size, 8))

    def value_of(self, name: str) -> int:
        """The value of the enumerator ``name`` (KeyError if absent)."""
        for v in self.values:
            if v.name == name:
                return v.value
        raise KeyError(f"{self.format_c()} has no enumerator {name!r}")

    def name_of(self, value: int) -> Optional[str]:
        """The first enumerator with ``value`` (None if none)."""
        for v in self.values:
            if v.value == value:
                return v.name
        return None


class Fwd(Type):
    """BTF_KIND_FWD: a forward declaration; ``is_union`` from the kind_flag."""

    __slots__ = ("is_union",)
    kind = Kind.FWD

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, is_union: bool) -> None:
        super().__init__(btf, type_id, name)
        self.is_union = is_union


class Func(_Ref):
    """BTF_KIND_FUNC: a function named ``name`` whose ``type`` is a FUNC_PROTO."""

    __slots__ = ("linkage",)
    kind = Kind.FUNC

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, proto: int, linkage: int) -> None:
        super().__init__(btf, type_id, name, proto)
        self.linkage = Linkage(linkage) if linkage in (0, 1, 2) else linkage

    @property
    def proto(self) -> "FuncProto":
        """The FUNC_PROTO (BTFError if the FUNC refers to something else)."""
        t = self.type
        if not isinstance(t, FuncProto):
            raise BTFError(f"FUNC [{self.id}] {self.name!r} refers to {t.kind.name} [{t.id}], not a FUNC_PROTO")
        return t


class Param(NamedTuple):
    """A FUNC_PROTO parameter ('' name when unnamed)."""

    name: str
    type_id: int
    btf: object = None

    @property
    def type(self) -> Type:
        """The type ``type_id`` names."""
        return self.btf[self.type_id] if self.btf is not None else VOID  # type: ignore[index]


class FuncProto(Type):
    """BTF_KIND_FUNC_PROTO: return type and parameters; a last unnamed void parameter means ``...``."""

    __slots__ = ("return_type_id", "params")
    kind = Kind.FUNC_PROTO

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, ret: int, params: list[Param]) -> None:
        super().__init__(btf, type_id, name)
        self.return_type_id = ret
        self.params = params

    @property
    def type_id(self) -> int:
        """Alias of ``return_type_id``."""
        return self.return_type_id

    @property
    def return_type(self) -> Type:
        """The return type (void is ``Void``)."""
        return self._get(self.return_type_id)

    type = return_type

    @property
    def variadic(self) -> bool:
        """True when the prototype ends in ``...``."""
        return bool(self.params) and self.params[-1].type_id == 0 and not self.params[-1].name


class Var(_Ref):
    """BTF_KIND_VAR: a global variable of ``type`` with ``linkage``."""

    __slots__ = ("linkage",)
    kind = Kind.VAR

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, ref: int, linkage: int) -> None:
        super().__init__(btf, type_id, name, ref)
        self.linkage = Linkage(linkage) if linkage in (0, 1, 2) else linkage

    def _size_at(self, depth: int) -> int:
        return self.type._size_at(self._deeper(depth))

    def _align_at(self, depth: int) -> int:
        return self.type._align_at(self._deeper(depth))


class VarSecinfo(NamedTuple):
    """A DATASEC entry: a VAR (or FUNC for .ksyms) at ``offset`` of ``size`` bytes."""

    type_id: int
    offset: int
    size: int
    btf: object = None

    @property
    def type(self) -> Type:
        """The type ``type_id`` names."""
        return self.btf[self.type_id] if self.btf is not None else VOID  # type: ignore[index]


class Datasec(Type):
    """BTF_KIND_DATASEC: an ELF data section (``.data``, ``.bss``, ``.rodata``, ``.kconfig``...)."""

    __slots__ = ("_size", "vars")
    kind = Kind.DATASEC

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, size: int, vars: list[VarSecinfo]) -> None:
        super().__init__(btf, type_id, name)
        self._size = size
        self.vars = vars

    def _size_at(self, depth: int) -> int:
        return self._size

    def _align_at(self, depth: int) -> int:
        return 1


class DeclTag(_Ref):
    """BTF_KIND_DECL_TAG: tag ``name`` on ``type`` (``component_idx`` -1) or on its member/parameter."""

    __slots__ = ("component_idx",)
    kind = Kind.DECL_TAG

    def __init__(self, btf: Optional["BTF"], type_id: int, name: str, ref: int, component_idx: int) -> None:
        super().__init__(btf, type_id, name, ref)
        self.component_idx = component_idx
