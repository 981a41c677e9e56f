"""Match a local access spec against one candidate target type, and compute relocation values.

:func:`match_spec` is libbpf's ``bpf_core_spec_match``: it walks the local high-level accessors and
finds each named member in the target by name (searching through anonymous structs/unions, checking
the member types with :func:`~.core_compat.fields_are_compat`), each array index within bounds
(flexible arrays have none), each enumerator by essential name. :func:`calc_relo` is
``bpf_core_calc_relo``: the original (local) and new (target) values, whether the instruction must be
poisoned, whether the original value must be checked in the instruction, and the load/store sizes
for field offsets.
"""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from .core_compat import fields_are_compat, types_are_compat, types_match
from .core_spec import MAX_SPEC_LEN, Accessor, CoreReloKind, Spec, SpecError, is_flex_array, resolve_size, skip_mods
from .types import Array, Composite, Enum, Int, Kind, Pointer, essential_name

if TYPE_CHECKING:  # pragma: no cover
    from .reader import BTF

__all__ = ["match_spec", "calc_relo", "RelocResult", "CalcError"]

_U64 = (1 << 64) - 1
_LITTLE = sys.byteorder == "little"


class CalcError(SpecError):
    """A relocation libbpf refuses outright (not poisoned): e.g. a bitfield no 64-bit load can read."""


# -- matching ---------------------------------------------------------------------------------------
def match_spec(local: Spec, targ_btf: "BTF", targ_id: int) -> Optional[Spec]:
    """The target spec if ``targ_id`` in ``targ_btf`` matches ``local``, else None."""
    targ = Spec(targ_btf, targ_id, local.kind)
    kind = local.kind
    if kind.is_type:
        if kind == CoreReloKind.TYPE_MATCHES:
            ok = types_match(local.btf, local.root_type_id, targ_btf, targ_id)
        else:
            ok = types_are_compat(local.btf, local.root_type_id, targ_btf, targ_id)
        return targ if ok else None
    if kind.is_enumval:
        return _match_enumval(local, targ)
    tid = targ_id
    for i, lacc in enumerate(local.accessors):
        tt, tid = skip_mods(targ_btf, tid)
        if lacc.name is not None:
            nxt = _match_member(local.btf, lacc, targ_btf, tid, targ)
            if nxt is None:
                return None
            tid = nxt
            continue
        if i > 0:
            if not isinstance(tt, Array):
                return None
            if not is_flex_array(targ_btf, targ.accessors[-1], tt) and lacc.idx >= tt.nelems:
                return None
            tid = skip_mods(targ_btf, tt.elem_type_id)[1]
        if len(targ.raw) == MAX_SPEC_LEN:
            raise SpecError(f"CO-RE target spec nests deeper than {MAX_SPEC_LEN}")
        targ.accessors.append(Accessor(tid, lacc.idx))
        targ.raw.append(lacc.idx)
        targ.bit_offset += lacc.idx * resolve_size(targ_btf, tid) * 8
    return targ


def _match_enumval(local: Spec, targ: Spec) -> Optional[Spec]:
    t, tid = skip_mods(targ.btf, targ.root_type_id)
    if not isinstance(t, Enum):
        return None
    want = essential_name(local.accessors[0].name or "")
    for i, v in enumerate(t.values):
        if essential_name(v.name) == want:
            targ.accessors.append(Accessor(tid, i, v.name))
            targ.raw.append(i)
            return targ
    return None


_MEMBER_INDEX: "weakref.WeakKeyDictionary[BTF, dict[int, tuple[dict[str, int], list[int]]]]" = \
    weakref.WeakKeyDictionary()


def _member_index(btf: "BTF", t: Composite) -> tuple[dict[str, int], list[int]]:
    """First member index of each name and the indices of anonymous members (kernel structs are
    searched by many relocations: index them once per BTF)."""
    per = _MEMBER_INDEX.get(btf)
    if per is None:
        per = _MEMBER_INDEX[btf] = {}
    entry = per.get(t.id)
    if entry is None:
        names: dict[str, int] = {}
        anon: list[int] = []
        for i, m in enumerate(t.members):
            if not m.name:
                anon.append(i)
            elif m.name not in names:
                names[m.name] = i
        entry = per[t.id] = (names, anon)
    return entry


def _match_member(local_btf: "BTF", lacc: Accessor, targ_btf: "BTF", targ_id: int, spec: Spec) -> Optional[int]:
    """Find the local accessor's member in target composite ``targ_id`` (through anonymous members),
    appending to ``spec``; the id of the member's type, or None.

    Members are considered in order, as libbpf does: an anonymous struct/union before the member of
    that name is searched first; the first member of that name ends the search, compatible or not.
    """
    tt, targ_id = skip_mods(targ_btf, targ_id)
    if not isinstance(tt, Composite):
        return None
    lt = local_btf[lacc.type_id]
    assert isinstance(lt, Composite)
    lm = lt.members[lacc.idx]
    names, anon = _member_index(targ_btf, tt)
    members = tt.members
    named = names.get(lm.name, len(members))
    if len(spec.raw) == MAX_SPEC_LEN and (anon or named < len(members)):
        raise SpecError(f"CO-RE target spec nests deeper than {MAX_SPEC_LEN}")
    for i in anon:
        if i > named:
            break
        m = members[i]
        spec.bit_offset += m.bit_offset
        spec.raw.append(i)
        found = _match_member(local_btf, lacc, targ_btf, m.type_id, spec)
        if found is not None:
            return found
        spec.bit_offset -= m.bit_offset
        spec.raw.pop()
    if named == len(members):
        return None
    m = members[named]
    if not fields_are_compat(local_btf, lm.type_id, targ_btf, m.type_id):
        return None
    spec.bit_offset += m.bit_offset
    spec.raw.append(named)
    spec.accessors.append(Accessor(targ_id, named, m.name))
    return m.type_id


# -- values -----------------------------------------------------------------------------------------
@dataclass
class RelocResult:
    """``struct bpf_core_relo_res``: what to check in and write to the instruction."""

    orig_val: int = 0
    new_val: int = 0
    poison: bool = False
    validate: bool = True
    fail_memsz_adjust: bool = False
    orig_sz: int = 0
    new_sz: int = 0
    orig_type_id: int = 0
    new_type_id: int = 0
    reason: str = ""


@dataclass
class _Field:
    val: int = 0
    size: int = 0
    type_id: int = 0
    validate: bool = True


def _elem_size(btf: "BTF", type_id: int) -> int:
    """Size of the innermost element of (possibly nested) arrays: what one load reads."""
    t, tid = skip_mods(btf, type_id)
    while isinstance(t, Array):
        t, tid = skip_mods(btf, t.elem_type_id)
    return resolve_size(btf, tid)


def _calc_field(kind: CoreReloKind, spec: Optional[Spec], where: str) -> Optional[_Field]:
    """Value of a field relocation on one spec; None asks for poisoning (field not found)."""
    out = _Field()
    if kind == CoreReloKind.FIELD_EXISTS:
        out.val = 1 if spec is not None else 0
        return out
    if spec is None:
        return None
    btf = spec.btf
    acc = spec.accessors[-1]
    if acc.name is None:  # a[n]: the element itself
        if kind == CoreReloKind.FIELD_BYTE_OFFSET:
            out.val = spec.bit_offset // 8
            out.size = _elem_size(btf, acc.type_id)
            out.type_id = acc.type_id
        elif kind == CoreReloKind.FIELD_BYTE_SIZE:
            out.val = resolve_size(btf, acc.type_id)
        else:
            raise CalcError(f"{where}: CO-RE relocation {kind.short} can't be applied to an array access")
        return out
    t = btf[acc.type_id]
    assert isinstance(t, Composite)
    m = t.members[acc.idx]
    mt, field_type_id = skip_mods(btf, m.type_id)
    bit_off = spec.bit_offset
    bit_sz = m.bitfield_size if t.kind_flag else 0
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = mt.size
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:  # the smallest load that holds the bits
            if byte_sz >= 8:
                raise CalcError(f"{where}: CO-RE relocation {kind.short} can't be satisfied for bitfield "
                                f"{m.name!r}: no 64-bit load reads it")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = resolve_size(btf, field_type_id)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    # a bitfield's offset/size/shift are the engine's choice (the compiler may have chosen
    # differently), so only signedness and the right shift are checked against the instruction
    out.validate = not bitfield
    if kind == CoreReloKind.FIELD_BYTE_OFFSET:
        out.val = byte_off
        if not bitfield:
            out.size = _elem_size(btf, field_type_id)
            out.type_id = field_type_id
    elif kind == CoreReloKind.FIELD_BYTE_SIZE:
        out.val = byte_sz
    elif kind == CoreReloKind.FIELD_SIGNED:
        out.val = int((isinstance(mt, Enum) and mt.signed) or (isinstance(mt, Int) and mt.signed))
        out.validate = True
    elif kind == CoreReloKind.FIELD_LSHIFT_U64:
        if _LITTLE:
            out.val = 64 - (bit_off + bit_sz - byte_off * 8)
        else:  # pragma: no cover - big-endian hosts
            out.val = (8 - byte_sz) * 8 + (bit_off - byte_off * 8)
    elif kind == CoreReloKind.FIELD_RSHIFT_U64:
        out.val = 64 - bit_sz
        out.validate = True
    return out


def _calc_type(kind: CoreReloKind, spec: Optional[Spec]) -> int:
    if spec is None:
        return 0  # type relocations give 0 when the type is not found
    if kind == CoreReloKind.TYPE_ID_TARGET:
        return spec.root_type_id
    if kind in (CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_MATCHES):
        return 1
    if kind == CoreReloKind.TYPE_SIZE:
        return resolve_size(spec.btf, spec.root_type_id)
    raise CalcError(f"unexpected type relocation {kind.short}")  # pragma: no cover - TYPE_ID_LOCAL is handled earlier


def _calc_enumval(kind: CoreReloKind, spec: Optional[Spec]) -> Optional[int]:
    if kind == CoreReloKind.ENUMVAL_EXISTS:
        return 1 if spec is not None else 0
    if spec is None:
        return None
    acc = spec.accessors[0]
    t = spec.btf[acc.type_id]
    assert isinstance(t, Enum)
    v = t.values[acc.idx].value
    if t.kind == Kind.ENUM:
        # struct btf_enum's value is an s32: libbpf widens it to 64 bits with sign extension
        v &= 0xFFFFFFFF
        if v & 0x80000000:
            v -= 1 << 32
    return v & _U64


def calc_relo(kind: CoreReloKind, local: Spec, targ: Optional[Spec], where: str = "") -> RelocResult:
    """Original and new values of a relocation for one candidate (``targ`` None: nothing matched)."""
    res = RelocResult()
    if kind.is_field:
        lf = _calc_field(kind, local, where)
        assert lf is not None
        res.orig_val, res.orig_sz, res.orig_type_id, res.validate = lf.val, lf.size, lf.type_id, lf.validate
        tf = _calc_field(kind, targ, where)
        if tf is None:
            res.poison = True
            res.reason = "field not found in the target BTF"
            return res
        res.new_val, res.new_sz, res.new_type_id = tf.val, tf.size, tf.type_id
        if res.orig_sz != res.new_sz:
            assert targ is not None
            ot = local.btf[res.orig_type_id]
            nt = targ.btf[res.new_type_id]
            # only pointers (32-bit kernel pointers read as 64-bit) and unsigned ints survive a
            # narrower or wider load unchanged; anything else would read a wrong value
            safe = (isinstance(ot, Pointer) and isinstance(nt, Pointer)) or (
                isinstance(ot, Int) and isinstance(nt, Int) and ot.encoding != 1 and nt.encoding != 1)
            res.fail_memsz_adjust = not safe
    elif kind.is_type:
        res.orig_val = _calc_type(kind, local)
        res.validate = kind != CoreReloKind.TYPE_ID_TARGET  # type ids change at link time
        res.new_val = _calc_type(kind, targ)
    elif kind.is_enumval:
        ov = _calc_enumval(kind, local)
        assert ov is not None
        res.orig_val = ov
        nv = _calc_enumval(kind, targ)
        if nv is None:
            res.poison = True
            res.reason = "enumerator not found in the target BTF"
            return res
        res.new_val = nv
    else:  # pragma: no cover - CoreReloKind has no other members
        raise CalcError(f"{where}: unrecognized CO-RE relocation kind {int(kind)}")
    return res
