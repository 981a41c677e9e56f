"""A program's BTF as the listing needs it: strings for source lines, bpftool's rendering of
function signatures for func-info headers.

bpftool prints a FUNC "type only" in its own style, not as a C declaration: every type is
followed by a space and pointers add ``"* "`` (``int f(struct xdp_md * ctx)``), unnamed
parameters drop the space, a void parameter prints ``...``, and a signature that would not fit
its 1024-byte buffer (or meets a kind it cannot render, like a type tag) is left out entirely.
"""

from __future__ import annotations

from typing import Optional

from ..btf import BTF, Kind
from ..errors import BTFError

_SIG_LIMIT = 1024


class _Unprintable(Exception):
    pass


class ProgramBTF:
    """Adapter from :class:`corebpf.btf.BTF` to the listing's :class:`~corebpf.asm.disasm.SourceBTF`."""

    def __init__(self, btf: BTF) -> None:
        self.btf = btf

    @classmethod
    def from_bytes(cls, data: bytes) -> "ProgramBTF":
        """Parse a standalone BTF blob (what the kernel returns for a program's BTF id)."""
        return cls(BTF.from_bytes(data))

    def string(self, offset: int) -> Optional[str]:
        """The string at ``offset``; None when out of range (the line is then not printed)."""
        try:
            return self.btf.string_at(offset)
        except (BTFError, IndexError, ValueError):
            return None

    def func_signature(self, type_id: int) -> str:
        """``int name(struct x * a, ...)`` as bpftool renders it; "" when bpftool would print nothing."""
        out: list[str] = []
        try:
            self._type_only(type_id, out, 0)
        except (_Unprintable, BTFError, KeyError, IndexError, RecursionError):
            return ""
        return "".join(out)

    def _emit(self, out: list[str], text: str) -> None:
        out.append(text)
        if sum(map(len, out)) >= _SIG_LIMIT:
            raise _Unprintable("signature overflows bpftool's buffer")

    def _type_only(self, type_id: int, out: list[str], depth: int) -> None:
        if depth > 64:
            raise _Unprintable("type chain too deep")
        if not type_id:
            self._emit(out, "void ")
            return
        t = self.btf[type_id]
        kind = t.kind
        if kind in (Kind.INT, Kind.TYPEDEF, Kind.FLOAT):
            self._emit(out, f"{t.name} ")
        elif kind == Kind.STRUCT:
            self._emit(out, f"struct {t.name} ")
        elif kind == Kind.UNION:
            self._emit(out, f"union {t.name} ")
        elif kind in (Kind.ENUM, Kind.ENUM64):
            self._emit(out, f"enum {t.name} ")
        elif kind == Kind.ARRAY:
            self._type_only(t.elem_type_id, out, depth + 1)  # type: ignore[attr-defined]
            nelems = t.nelems  # type: ignore[attr-defined]
            self._emit(out, f"[{nelems - (1 << 32) if nelems >= 1 << 31 else nelems}]")
        elif kind == Kind.PTR:
            self._type_only(t.type_id, out, depth + 1)  # type: ignore[attr-defined]
            self._emit(out, "* ")
        elif kind == Kind.FWD:
            self._emit(out, f"{'union' if t.is_union else 'struct'} {t.name} ")  # type: ignore[attr-defined]
        elif kind in (Kind.VOLATILE, Kind.CONST, Kind.RESTRICT):
            self._emit(out, {Kind.VOLATILE: "volatile ", Kind.CONST: "const ", Kind.RESTRICT: "restrict "}[kind])
            self._type_only(t.type_id, out, depth + 1)  # type: ignore[attr-defined]
        elif kind == Kind.FUNC_PROTO:
            self._func(type_id, None, out, depth)
        elif kind == Kind.FUNC:
            self._func(t.type_id, t.name, out, depth)  # type: ignore[attr-defined]
        elif kind == Kind.VAR:
            if t.linkage == 0:  # type: ignore[attr-defined]  # static
                self._emit(out, "static ")
            self._type_only(t.type_id, out, depth + 1)  # type: ignore[attr-defined]
            self._emit(out, f" {t.name}")
        elif kind == Kind.DATASEC:
            self._emit(out, f'section ("{t.name}") ')
        else:
            raise _Unprintable(f"bpftool has no type-only form for {kind.name}")

    def _func(self, proto_id: int, name: Optional[str], out: list[str], depth: int) -> None:
        proto = self.btf[proto_id]
        if proto.kind != Kind.FUNC_PROTO:
            raise _Unprintable("FUNC does not refer to a FUNC_PROTO")
        self._type_only(proto.return_type_id, out, depth + 1)  # type: ignore[attr-defined]
        self._emit(out, f"{name}(" if name is not None else "(")
        for i, param in enumerate(proto.params):  # type: ignore[attr-defined]
            if i:
                self._emit(out, ", ")
            if not param.type_id:
                self._emit(out, "...")
                continue
            self._type_only(param.type_id, out, depth + 1)
            if param.name:
                self._emit(out, param.name)
            elif out and out[-1].endswith(" "):
                out[-1] = out[-1][:-1]  # unnamed parameter: no separating space
        self._emit(out, ")")


__all__ = ["ProgramBTF"]
