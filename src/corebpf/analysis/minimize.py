"""Minimal BTF: only the kernel types (and members) some objects' CO-RE relocations touch.

The idea of ``bpftool gen min_core_btf`` (BTFGen): relocate every object against a kernel's full BTF,
and from each relocation's *target spec* keep what the relocation looked at:

* field relocations: the root type, and along the access path each struct/union member walked (only
  those members) and the member's type. Structs reached this way keep just the marked members;
  pointers are kept but not followed (they become ``void *``).
* type relocations (exists, size, target id): the type and everything it refers to, following
  pointers; members of structs are not kept (a type relocation only compares kinds and sizes).
* ``TYPE_MATCHES``: the type with all its members, recursively, stopping at structs behind pointers.
* enum value relocations: the whole enum.

Types keep their original order; references to types not kept become 0 (void). The result gives every
relocation the same outcome as the full BTF (:func:`compare_relocations` checks it), and a kernel
without BTF can run the objects with ``corebpf.load(obj, btf=minimal)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

from ..errors import BTFError
from ..btf.types import Array, Composite, Enum, Float, Func, FuncProto, Fwd, Int, Kind, Var

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from ..btf.core import Resolution, TargetSet
    from ..btf.core_spec import Spec
    from ..elf.objectspec import ObjectSpec

__all__ = ["TypeMarks", "minimize", "mark_object", "build_btf", "compare_relocations", "relocate_object",
           "MinimizeError"]

_MODS = (Kind.TYPEDEF, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG)


class MinimizeError(BTFError):
    """An object cannot be minimised against a BTF (a relocation libbpf would refuse)."""


@dataclass
class TypeMarks:
    """Which types of ``btf`` to keep, and for structs/unions which members (``None``: all of them)."""

    btf: "BTF"
    types: set[int] = field(default_factory=set)
    members: dict[int, Optional[set[int]]] = field(default_factory=dict)
    _followed: set[tuple[int, bool]] = field(default_factory=set)

    # -- marking (bpftool's rules) -----------------------------------------------------------------
    def mark_type(self, type_id: int, follow_pointers: bool) -> None:
        """Keep ``type_id`` and what it needs: qualifier/typedef targets, array element and index types,
        prototype types, pointer targets only with ``follow_pointers``. Struct members are not kept."""
        stack = [type_id]
        while stack:
            tid = stack.pop()
            if tid == 0 or (tid, follow_pointers) in self._followed:
                continue
            self._followed.add((tid, follow_pointers))
            self.types.add(tid)
            t = self.btf[tid]
            if t.kind == Kind.PTR:
                if follow_pointers:
                    stack.append(t.type_id)  # type: ignore[attr-defined]
            elif t.kind in _MODS:
                stack.append(t.type_id)  # type: ignore[attr-defined]
            elif isinstance(t, Array):
                stack += [t.elem_type_id, t.index_type_id]
            elif isinstance(t, FuncProto):
                stack += [t.return_type_id, *(p.type_id for p in t.params)]
            if isinstance(t, Composite):
                self.members.setdefault(tid, set())

    def mark_member(self, type_id: int, idx: int) -> None:
        """Keep member ``idx`` of struct/union ``type_id``."""
        kept = self.members.setdefault(type_id, set())
        if kept is not None:
            kept.add(idx)

    def mark_type_match(self, type_id: int, behind_ptr: bool = False) -> None:
        """Keep a type for ``TYPE_MATCHES``: composites with every member (unless reached through a
        pointer), recursively."""
        stack = [(type_id, behind_ptr)]
        seen: set[tuple[int, bool]] = set()
        while stack:
            tid, behind = stack.pop()
            if tid == 0 or (tid, behind) in seen:
                continue
            seen.add((tid, behind))
            self.types.add(tid)
            t = self.btf[tid]
            if isinstance(t, Composite):
                if behind:
                    self.members.setdefault(tid, set())
                else:
                    self.members[tid] = None
                    stack += [(m.type_id, False) for m in t.members]
            elif t.kind in _MODS:
                stack.append((t.type_id, behind))  # type: ignore[attr-defined]
            elif t.kind == Kind.PTR:
                stack.append((t.type_id, True))  # type: ignore[attr-defined]
            elif isinstance(t, Array):
                stack += [(t.elem_type_id, False), (t.index_type_id, False)]
            elif isinstance(t, FuncProto):
                stack += [(t.return_type_id, False), *((p.type_id, False) for p in t.params)]

    def record(self, spec: "Spec") -> None:
        """Keep what one target spec (a resolved relocation) needs."""
        kind = spec.kind
        if kind.is_field:
            self._record_field(spec)
        elif kind.name == "TYPE_MATCHES":
            self.mark_type_match(spec.root_type_id)
        elif kind.is_type:
            self.mark_type(spec.root_type_id, True)
        else:
            self.mark_type(spec.root_type_id, False)

    def _record_field(self, spec: "Spec") -> None:
        tid = spec.root_type_id
        self.mark_type(tid, False)
        for idx in spec.raw[1:]:
            t = self.btf[tid]
            while t.kind in _MODS:
                tid = t.type_id  # type: ignore[attr-defined]
                t = self.btf[tid]
            if isinstance(t, Composite):
                self.mark_member(tid, idx)
                tid = t.members[idx].type_id
                self.mark_type(tid, False)
            elif isinstance(t, Array):
                tid = t.elem_type_id
            else:
                raise MinimizeError(f"target spec walks into {t.kind.name} [{tid}], not a struct, union or array")


# -- relocating -------------------------------------------------------------------------------------
def relocate_object(spec: "ObjectSpec", targets: "TargetSet") -> tuple[dict[str, list["Resolution"]], dict[str, bytes]]:
    """Resolutions and relocated code of every function of ``spec`` carrying CO-RE relocations
    (raises :class:`MinimizeError` for a relocation libbpf would refuse)."""
    from ..btf.core import CoreRelocationError, CoreRelocator

    res: dict[str, list["Resolution"]] = {}
    code: dict[str, bytes] = {}
    if spec.btf is None:
        return res, code
    core = CoreRelocator(spec.btf, targets)
    for f in (*spec.programs.values(), *spec.subprograms.values()):
        if not f.core_relos:
            continue
        insns = bytearray(f.instructions)
        try:
            res[f.name] = core.relocate(insns, f.core_relos, prog_name=f.name)
        except CoreRelocationError as e:
            raise MinimizeError(f"{spec.source}: {e}") from None
        code[f.name] = bytes(insns)
    return res, code


def mark_object(marks: TypeMarks, spec: "ObjectSpec") -> int:
    """Relocate ``spec`` against ``marks.btf`` and keep what its relocations touch; returns how many
    relocations resolved to a target."""
    from ..btf.core import TargetSet

    resolutions, _ = relocate_object(spec, TargetSet.from_btf(marks.btf))
    n = 0
    for rs in resolutions.values():
        for r in rs:
            if r.target_match is not None and r.target_match.btf is marks.btf:
                marks.record(r.target_match)
                n += 1
    return n


# -- writing ----------------------------------------------------------------------------------------
def _info(kind: Kind, vlen: int, kflag: bool) -> int:
    return (int(kflag) << 31) | (int(kind) << 24) | (vlen & 0xFFFF)


def build_btf(marks: TypeMarks) -> bytes:
    """A raw BTF blob with the marked types (original order, unmarked references -> 0)."""
    from ..btf.builder import BTFBuilder

    btf = marks.btf
    order = sorted(marks.types)
    new_id = {old: i + 1 for i, old in enumerate(order)}

    def m(tid: int) -> int:
        return new_id.get(tid, 0)

    b = BTFBuilder(byteorder=btf.byteorder)
    s = b.add_string
    for tid in order:
        t = btf[tid]
        name = s(t.name) if t.name else 0
        if isinstance(t, Composite):
            keep = marks.members.get(tid)
            members = [mb for i, mb in enumerate(t.members) if keep is None or i in keep]
            kflag = t.kind_flag and any(mb.bitfield_size for mb in members)
            words = [name, _info(t.kind, len(members), kflag), t.size]
            for mb in members:
                off = (mb.bitfield_size << 24) | mb.bit_offset if kflag else mb.bit_offset
                words += [s(mb.name) if mb.name else 0, m(mb.type_id), off]
        elif isinstance(t, Int):
            words = [name, _info(Kind.INT, 0, False), t.size, (int(t.encoding) << 24) | (t.offset << 16) | t.bits]
        elif isinstance(t, Float):
            words = [name, _info(Kind.FLOAT, 0, False), t.size]
        elif isinstance(t, Array):
            words = [name, _info(Kind.ARRAY, 0, False), 0, m(t.elem_type_id), m(t.index_type_id), t.nelems]
        elif isinstance(t, Enum):
            words = [name, _info(t.kind, len(t.values), t.signed), t.size]
            for v in t.values:
                u = v.value & ((1 << 64) - 1)
                words += [s(v.name), u & 0xFFFFFFFF] + ([u >> 32] if t.kind == Kind.ENUM64 else [])
        elif isinstance(t, Fwd):
            words = [name, _info(Kind.FWD, 0, t.is_union), 0]
        elif isinstance(t, FuncProto):
            words = [0, _info(Kind.FUNC_PROTO, len(t.params), False), m(t.return_type_id)]
            for p in t.params:
                words += [s(p.name) if p.name else 0, m(p.type_id)]
        elif isinstance(t, (Func, Var)):
            words = [name, _info(t.kind, int(t.linkage) if isinstance(t, Func) else 0, False), m(t.type_id)]
            if isinstance(t, Var):
                words.append(int(t.linkage))
        elif t.kind in _MODS or t.kind == Kind.PTR:
            words = [name, _info(t.kind, 0, False), m(t.type_id)]  # type: ignore[attr-defined]
        else:
            raise MinimizeError(f"cannot keep {t.kind.name} type [{tid}] in minimal BTF")
        b.add_raw(words)
    return b.encode()


def minimize(specs: Sequence["ObjectSpec"], btf: "BTF") -> bytes:
    """Minimal BTF of ``btf`` for the CO-RE relocations of all ``specs``."""
    marks = TypeMarks(btf)
    for spec in specs:
        mark_object(marks, spec)
    return build_btf(marks)


# -- checking ---------------------------------------------------------------------------------------
_ID = re.compile(r"\[\d+\] ")
_SAME = ("index", "insn", "kind", "spec", "local", "access", "orig_val", "new_val", "insn_value", "poisoned")


def comparable(res: "Resolution") -> dict[str, object]:
    """What must not change between full and minimal BTF: every field of ``Resolution.as_dict()`` but
    the target's type id and raw member indices (types and members are renumbered), the number of
    candidates and the poison reason (which quotes that number); the target's kind and name stay.
    A ``target_type_id`` relocation's value *is* a type id of the BTF used: it is compared as the
    type it names."""
    d = res.as_dict()
    out = {k: d[k] for k in _SAME}
    out["target"] = _ID.sub("", str(d["target"]).split(" ", 1)[1]) if d["target"] else None
    if res.kind.name == "TYPE_ID_TARGET" and res.target_match is not None and not res.poisoned:
        t = res.target_match.btf[res.new_val]
        out["new_val"] = f"{t.kind.name} {t.name}"
    return out


def _mask_type_ids(code: bytes, resolutions: list["Resolution"]) -> bytes:
    out = bytearray(code)
    for r in resolutions:
        if r.kind.name == "TYPE_ID_TARGET":
            out[r.insn_index * 8 + 4:r.insn_index * 8 + 8] = bytes(4)
    return bytes(out)


def compare_relocations(spec: "ObjectSpec", full: "TargetSet", minimal: "TargetSet") -> list[str]:
    """Differences between relocating ``spec`` against ``full`` and ``minimal`` (empty: identical):
    patched instructions byte for byte (but target type ids), and :func:`comparable` resolutions."""
    r1, c1 = relocate_object(spec, full)
    r2, c2 = relocate_object(spec, minimal)
    diffs = []
    for fn in sorted(set(r1) | set(r2)):
        if _mask_type_ids(c1.get(fn, b""), r1.get(fn, [])) != _mask_type_ids(c2.get(fn, b""), r2.get(fn, [])):
            diffs.append(f"{fn}: relocated instructions differ")
        if len(r1.get(fn, [])) != len(r2.get(fn, [])):
            diffs.append(f"{fn}: {len(r1.get(fn, []))} relocations with the full BTF, {len(r2.get(fn, []))} with the minimal")
        for a, b in zip(r1.get(fn, []), r2.get(fn, [])):
            ca, cb = comparable(a), comparable(b)
            if ca != cb:
                diffs.append(f"{fn}: relocation #{a.index}: {ca} != {cb}")
    return diffs
