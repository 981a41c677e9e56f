"""CO-RE type compatibility: which target types a local type may relocate to.

Three relations, each libbpf's (relo_core.c):

* :func:`kinds_compat` -- candidate pre-filter: same kind, or both enums (ENUM and ENUM64 mix).
* :func:`types_are_compat` -- for TYPE_EXISTS/TYPE_SIZE/TYPE_ID_TARGET: after the root name check,
  names are ignored; structs/unions/enums/fwds match by kind, ints unless they are legacy
  bitfield-like ints, pointers and arrays recurse into what they hold, function prototypes need the
  same arity and compatible parameter/return types.
* :func:`fields_are_compat` -- for a field found by name: any two composites, pointers, floats; enums
  and fwds with the same essential name (or one anonymous); ints that are not legacy bitfields;
  arrays by element.
* :func:`types_match` -- TYPE_MATCHES, much stricter: same kinds (a struct/union behind a pointer
  also matches a fwd of that kind), ints of the same size and signedness, arrays of the same length,
  every local member/enumerator present in the target by name, function prototypes position by
  position.

Results are True/False; a structure deeper than libbpf's limits raises :class:`~.core_spec.SpecError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core_spec import SpecError, skip_mods
from .types import Array, Composite, Enum, FuncProto, Fwd, Int, Kind, Pointer, Type, essential_name

if TYPE_CHECKING:  # pragma: no cover
    from .reader import BTF

__all__ = ["kinds_compat", "types_are_compat", "fields_are_compat", "types_match", "names_match"]

_ENUMS = (Kind.ENUM, Kind.ENUM64)
_MAX_DEPTH = 32


def kinds_compat(a: Type, b: Type) -> bool:
    """``btf_kind_core_compat``: the same kind, or both ENUM/ENUM64."""
    return a.kind == b.kind or (a.kind in _ENUMS and b.kind in _ENUMS)


def _int_offset_zero(t: Type) -> bool:
    return isinstance(t, Int) and t.offset == 0


def types_are_compat(local_btf: "BTF", local_id: int, targ_btf: "BTF", targ_id: int, level: int = 32) -> bool:
    """``bpf_core_types_are_compat`` (type-based relocations; root names already matched)."""
    if not kinds_compat(local_btf[local_id], targ_btf[targ_id]):
        return False
    for _ in range(_MAX_DEPTH):
        lt, local_id = skip_mods(local_btf, local_id)
        tt, targ_id = skip_mods(targ_btf, targ_id)
        if not kinds_compat(lt, tt):
            return False
        k = lt.kind
        if k in (Kind.UNKN, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FWD):
            return True
        if k == Kind.INT:
            return _int_offset_zero(lt) and _int_offset_zero(tt)
        if isinstance(lt, Pointer):
            local_id, targ_id = lt.type_id, tt.type_id  # type: ignore[attr-defined]
            continue
        if isinstance(lt, Array):
            local_id, targ_id = lt.elem_type_id, tt.elem_type_id  # type: ignore[attr-defined]
            continue
        if isinstance(lt, FuncProto):
            assert isinstance(tt, FuncProto)
            if len(lt.params) != len(tt.params):
                return False
            for lp, tp in zip(lt.params, tt.params):
                if level <= 0:
                    raise SpecError("function prototype nesting too deep for CO-RE compatibility check")
                lid = skip_mods(local_btf, lp.type_id)[1]
                tid = skip_mods(targ_btf, tp.type_id)[1]
                if not types_are_compat(local_btf, lid, targ_btf, tid, level - 1):
                    return False
            local_id = skip_mods(local_btf, lt.return_type_id)[1]
            targ_id = skip_mods(targ_btf, tt.return_type_id)[1]
            continue
        return False  # other kinds are never relocated
    raise SpecError("type chain too deep for CO-RE compatibility check")


def fields_are_compat(local_btf: "BTF", local_id: int, targ_btf: "BTF", targ_id: int) -> bool:
    """``bpf_core_fields_are_compat``: may a local member's type relocate to the target member's?"""
    for _ in range(_MAX_DEPTH):
        lt, local_id = skip_mods(local_btf, local_id)
        tt, targ_id = skip_mods(targ_btf, targ_id)
        if isinstance(lt, Composite) and isinstance(tt, Composite):
            return True
        if not kinds_compat(lt, tt):
            return False
        k = lt.kind
        if k in (Kind.PTR, Kind.FLOAT):
            return True
        if k in (Kind.FWD, Kind.ENUM, Kind.ENUM64):
            ln, tn = essential_name(lt.name), essential_name(tt.name)
            return not ln or not tn or ln == tn
        if k == Kind.INT:
            return _int_offset_zero(lt) and _int_offset_zero(tt)
        if isinstance(lt, Array):
            local_id, targ_id = lt.elem_type_id, tt.elem_type_id  # type: ignore[attr-defined]
            continue
        return False
    raise SpecError("array nesting too deep for CO-RE field compatibility check")


def names_match(local_name: str, targ_name: str) -> bool:
    """``bpf_core_names_match``: essential names equal; an anonymous target only matches anonymous."""
    if not targ_name:
        return not local_name
    return essential_name(local_name) == essential_name(targ_name)


def _enums_match(lt: Enum, tt: Enum) -> bool:
    if lt.size != tt.size or len(lt.values) > len(tt.values):
        return False
    return all(any(names_match(lv.name, tv.name) for tv in tt.values) for lv in lt.values)


def _composites_match(local_btf: "BTF", lt: Composite, targ_btf: "BTF", tt: Composite, behind_ptr: bool,
                      level: int) -> bool:
    if len(lt.members) > len(tt.members):
        return False
    for lm in lt.members:
        if not any(names_match(lm.name, tm.name)
                   and _match(local_btf, lm.type_id, targ_btf, tm.type_id, behind_ptr, level - 1)
                   for tm in tt.members):
            return False
    return True


def types_match(local_btf: "BTF", local_id: int, targ_btf: "BTF", targ_id: int) -> bool:
    """``bpf_core_types_match`` (TYPE_MATCHES; root names already matched)."""
    return _match(local_btf, local_id, targ_btf, targ_id, False, 32)


def _match(local_btf: "BTF", local_id: int, targ_btf: "BTF", targ_id: int, behind_ptr: bool, level: int) -> bool:
    if level <= 0:
        raise SpecError("type nesting too deep for CO-RE type match")
    for _ in range(_MAX_DEPTH):
        lt, local_id = skip_mods(local_btf, local_id)
        tt, targ_id = skip_mods(targ_btf, targ_id)
        if not names_match(lt.name, tt.name):
            return False
        lk, tk = lt.kind, tt.kind
        if lk == Kind.UNKN:
            return tk == Kind.UNKN
        if isinstance(lt, Fwd):
            if behind_ptr and tk != Kind.FWD:
                return (tk == Kind.STRUCT and not lt.is_union) or (tk == Kind.UNION and lt.is_union)
            return isinstance(tt, Fwd) and lt.is_union == tt.is_union
        if isinstance(lt, Enum):
            return isinstance(tt, Enum) and _enums_match(lt, tt)
        if isinstance(lt, Composite):
            if behind_ptr:
                if lk == tk:
                    return True
                return isinstance(tt, Fwd) and (lk == Kind.UNION) == tt.is_union
            return lk == tk and _composites_match(local_btf, lt, targ_btf, tt, behind_ptr, level)  # type: ignore[arg-type]
        if isinstance(lt, Int):
            return isinstance(tt, Int) and lt.size == tt.size and lt.signed == tt.signed
        if isinstance(lt, Pointer):
            if not isinstance(tt, Pointer):
                return False
            behind_ptr = True
            local_id, targ_id = lt.type_id, tt.type_id
            continue
        if isinstance(lt, Array):
            if not isinstance(tt, Array) or lt.nelems != tt.nelems:
                return False
            local_id, targ_id = lt.elem_type_id, tt.elem_type_id
            continue
        if isinstance(lt, FuncProto):
            if not isinstance(tt, FuncProto) or len(lt.params) != len(tt.params):
                return False
            for lp, tp in zip(lt.params, tt.params):
                if not _match(local_btf, lp.type_id, targ_btf, tp.type_id, behind_ptr, level - 1):
                    return False
            local_id, targ_id = lt.return_type_id, tt.return_type_id
            continue
        return False
    raise SpecError("type chain too deep for CO-RE type match")
