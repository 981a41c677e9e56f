"""The memory layout of one struct or union, like ``pahole``: offsets, sizes, holes, cachelines.

    from corebpf.btf.c_dump_layout import layout, format_layout
    lay = layout(BTF.vmlinux().find("task_struct"))
    print(format_layout(lay))          # pahole-style C with /* offset size */ comments
    lay.holes, lay.padding, lay.to_dict()

Anonymous struct/union members are expanded in place (their members' offsets are from the start
of the outer type, as the member is really used); named ones are shown as one member. A *hole* is
space between the end of a member and the start of the next one that no member covers; *bit
holes* are unused bits between bitfields of one run; *padding* is the space after the last member.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import BTFError
from .types import Composite, Type, Union as UnionType

__all__ = ["MemberLayout", "Hole", "Layout", "layout", "format_layout", "CACHELINE"]

#: Cacheline size used for the ``cachelines`` figures (x86-64, arm64).
CACHELINE = 64


@dataclass
class Hole:
    """Unused space: ``bits`` bits starting at bit ``bit_offset`` (from the start of the outer type)."""

    bit_offset: int
    bits: int
    after: str  # name of the member before the hole

    @property
    def offset(self) -> int:
        return self.bit_offset // 8

    @property
    def size(self) -> int:
        """Whole bytes of the hole (0 for a bit hole)."""
        return self.bits // 8


@dataclass
class MemberLayout:
    """One member: ``offset``/``size`` in bytes, ``bit_offset`` from the start of the outer type,
    ``bitfield_size`` (0 unless a bitfield) and, for anonymous struct/union members, their own layout."""

    name: str
    type: str
    decl: str
    offset: int
    size: int
    bit_offset: int
    bitfield_size: int = 0
    inner: Optional["Layout"] = None
    hole_after: Optional[Hole] = None
    bit_hole_after: Optional[Hole] = None


@dataclass
class Layout:
    """A struct/union: its members, holes, trailing padding and size figures (bytes)."""

    kind: str
    name: str
    type_id: int
    size: int
    alignment: int
    members: list[MemberLayout] = field(default_factory=list)
    holes: list[Hole] = field(default_factory=list)
    bit_holes: list[Hole] = field(default_factory=list)
    padding: int = 0
    base_bits: int = 0  # where this (possibly nested) type starts, in bits from the outermost type

    @property
    def cachelines(self) -> int:
        return -(-self.size // CACHELINE)

    @property
    def sum_members(self) -> int:
        """Bytes covered by members (bitfields counted in bits, rounded down to bytes)."""
        total_bits = sum(m.bitfield_size if m.bitfield_size else 8 * m.size for m in self.members)
        return total_bits // 8

    @property
    def sum_holes(self) -> int:
        return sum(h.size for h in self.holes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``corebpf btf show --json``)."""
        def member(m: MemberLayout) -> dict[str, Any]:
            d: dict[str, Any] = {"name": m.name, "type": m.type, "offset": m.offset, "size": m.size,
                                 "bit_offset": m.bit_offset}
            if m.bitfield_size:
                d["bitfield_size"] = m.bitfield_size
            if m.inner is not None:
                d["members"] = [member(x) for x in m.inner.members]
            return d

        def holes(hs: list[Hole]) -> list[dict[str, Any]]:
            return [{"after": h.after, "offset": h.offset, "bit_offset": h.bit_offset, "bits": h.bits,
                     "size": h.size} for h in hs]

        all_holes, all_bit_holes = self._all_holes()
        return {
            "id": self.type_id, "kind": self.kind, "name": self.name, "size": self.size,
            "alignment": self.alignment, "cachelines": self.cachelines,
            "members": [member(m) for m in self.members],
            "holes": holes(all_holes), "bit_holes": holes(all_bit_holes),
            "sum_members": self.sum_members, "sum_holes": sum(h.size for h in all_holes),
            "padding": self.padding,
        }

    def _all_holes(self) -> tuple[list[Hole], list[Hole]]:
        holes, bits = list(self.holes), list(self.bit_holes)
        for m in self.members:
            if m.inner is not None:
                h, b = m.inner._all_holes()
                holes += h
                bits += b
        return holes, bits


def _member_bits(m: Any) -> tuple[int, int, int]:
    """(bit offset, width in bits, byte size of the type) of a member."""
    try:
        size = m.type.size
    except BTFError:  # a member of an incomplete type (should not happen in valid BTF)
        size = 0
    if m.is_bitfield:
        return m.effective_bit_offset, m.bit_size, size
    return m.bit_offset, 8 * size, size


def layout(t: Type, *, base_bits: int = 0) -> Layout:
    """The layout of struct/union ``t`` (typedefs and qualifiers are looked through)."""
    c = t.resolve()
    if not isinstance(c, Composite):
        raise TypeError(f"{t.format_c()} is not a struct or union")
    is_union = isinstance(c, UnionType)
    lay = Layout("union" if is_union else "struct", c.name, c.id, c.size, c.alignment, base_bits=base_bits)
    end = 0  # bits covered so far (relative to this type)
    prev: Optional[MemberLayout] = None
    for m in c.members:
        off, width, size = _member_bits(m)
        mt = m.type
        inner = None
        inner_type = mt.resolve()
        if not m.name and isinstance(inner_type, Composite) and not inner_type.name:
            inner = layout(inner_type, base_bits=base_bits + off)
        ml = MemberLayout(name=m.name, type=mt.format_c(), decl=mt.format_c(m.name), offset=(base_bits + off) // 8,
                          size=size, bit_offset=base_bits + off, bitfield_size=m.bitfield_size or
                          (width if m.is_bitfield else 0), inner=inner)
        if not is_union and prev is not None and off > end:
            # whole bytes between the previous member's last byte and this one's first are a hole;
            # what is left of the gap (bits in a partly used byte) is a bit hole
            end_byte, start_byte = -(-end // 8), off // 8
            hole_bytes = max(0, start_byte - end_byte)
            if hole_bytes:
                hole = Hole(base_bits + end_byte * 8, hole_bytes * 8, prev.name)
                prev.hole_after = hole
                lay.holes.append(hole)
            bit_gap = off - end - 8 * hole_bytes
            if bit_gap > 0:
                bh = Hole(base_bits + end, bit_gap, prev.name)
                prev.bit_hole_after = bh
                lay.bit_holes.append(bh)
        lay.members.append(ml)
        end = max(end, off + width) if not is_union else max(end, width)
        prev = ml
    lay.padding = max(0, c.size - (-(-end // 8)))
    return lay


def _comment(m: MemberLayout) -> str:
    if m.bitfield_size:
        return f"/* {m.bit_offset // 8:5d}:{m.bit_offset % 8:2d} {m.size:4d} */"
    return f"/* {m.offset:5d} {m.size:5d} */"


def format_layout(lay: Layout) -> str:
    """pahole-style text: the type as C with an ``/* offset size */`` comment per member, hole and
    cacheline-boundary comments, and a size summary at the end."""
    lines: list[str] = []
    head = f"{lay.kind} {lay.name} {{" if lay.name else f"{lay.kind} {{"
    lines.append(head)
    state = {"line": 1}  # next cacheline boundary to announce
    _format_members(lay, 1, lines, state)
    all_holes, all_bits = lay._all_holes()
    lines.append("")
    lines.append(f"\t/* size: {lay.size}, cachelines: {lay.cachelines}, members: {len(lay.members)} */")
    if all_holes:
        lines.append(f"\t/* sum members: {lay.sum_members}, holes: {len(all_holes)}, "
                     f"sum holes: {sum(h.size for h in all_holes)} */")
    if all_bits:
        lines.append(f"\t/* bit holes: {len(all_bits)}, sum bit holes: {sum(h.bits for h in all_bits)} bits */")
    if lay.padding:
        lines.append(f"\t/* padding: {lay.padding} */")
    if lay.size % CACHELINE:
        lines.append(f"\t/* last cacheline: {lay.size % CACHELINE} bytes */")
    lines.append("};")
    return "\n".join(lines) + "\n"


def _format_members(lay: Layout, depth: int, lines: list[str], state: dict[str, int]) -> None:
    tabs = "\t" * depth
    for m in lay.members:
        boundary = state["line"] * CACHELINE
        if m.offset >= boundary and not m.inner:
            n = m.offset // CACHELINE
            ago = m.offset - n * CACHELINE
            if ago:
                lines.append(f"{tabs}/* --- cacheline {n} boundary ({n * CACHELINE} bytes) was {ago} bytes ago --- */")
            else:
                lines.append(f"{tabs}/* --- cacheline {n} boundary ({n * CACHELINE} bytes) --- */")
            state["line"] = n + 1
        if m.inner is not None:
            lines.append(f"{tabs}{m.inner.kind} {{")
            _format_members(m.inner, depth + 1, lines, state)
            closer = "};" if not m.name else f"}} {m.name};"
            lines.append(f"{tabs}{closer:<40} {_comment(m)}")
        else:
            decl = m.decl + (f":{m.bitfield_size}" if m.bitfield_size else "") + ";"
            lines.append(f"{tabs}{decl:<40} {_comment(m)}")
        if m.bit_hole_after is not None:
            lines.append(f"\n{tabs}/* XXX {m.bit_hole_after.bits} bit{'s' if m.bit_hole_after.bits != 1 else ''} hole, "
                         "try to pack */")
        if m.hole_after is not None:
            lines.append(f"\n{tabs}/* XXX {m.hole_after.size} byte{'s' if m.hole_after.size != 1 else ''} hole, "
                         "try to pack */\n")
    if lay.padding and depth > 1:
        lines.append(f"\n{tabs}/* XXX {lay.padding} bytes padding */")
