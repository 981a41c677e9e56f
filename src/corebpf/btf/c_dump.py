"""Dump BTF as a C header (``vmlinux.h``), like ``bpftool btf dump file X format c``.

Public API::

    from corebpf.btf.c_dump import dump_c, iter_c, CDumper

    text = dump_c(BTF.vmlinux())                          # the whole vmlinux.h
    text = dump_c(btf, types=["task_struct"])             # named types and what they need
    for chunk in iter_c(btf): out.write(chunk)            # streamed
    d = CDumper(RawTypes(raw_bytes)); d.dump_type(id)    # one type (and its deps) at a time

How the output is put together (the semantics of libbpf's ``btf_dump.c``, written anew here):

* **Order.** Each requested type is first *ordered*: a depth-first walk that queues every named
  definition it needs before itself. A member embedded by value is a *strong* dependency (its
  definition must come first); a named struct/union reached through a pointer is *weak* (a forward
  declaration is enough), which is how cycles (``struct a { struct b *b; }`` / ``struct b { struct a
  a; }``) are broken. Anonymous types are never queued: they are written inline where used.
* **Emit.** Queued types are then written; before a struct's body, the types of its members are
  visited so that anything still missing gets a forward declaration (``struct foo;``) or, for a
  typedef only needed through a pointer, its ``typedef`` line.
* **Names.** Two different types with one name (possible in BTF, not in C) get ``___2``, ``___3``
  suffixes in the order they are first printed; struct/union/enum tags share one namespace and
  typedefs and enumerators another, as in C.
* **Layout.** Offsets are never left to chance: gaps before a member or at the end of a struct are
  filled with anonymous bitfields (``long: 64;``, ``int: 0;``), a struct whose members are not
  naturally aligned (or whose size is not a multiple of its alignment) gets
  ``__attribute__((packed))``, and enums of unusual size get a ``mode`` attribute.
* **Header.** The whole-BTF dump is wrapped in ``#ifndef __VMLINUX_H__`` and the clang pragma that
  applies ``preserve_access_index`` to every record (so CO-RE relocations are recorded), exactly as
  bpftool writes it; ``dump_c(..., header=False)`` leaves both out.

This module depends only on :mod:`corebpf.btf.c_dump_table` (standard library only), so the CLI can
dump without importing numpy; :func:`dump_c` also accepts a :class:`corebpf.btf.BTF`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Union

from corebpf.btf.c_dump_table import (
    ARRAY, CONST, DATASEC, DECL_TAG, ENUM, ENUM64, FLOAT, FUNC, FUNC_PROTO, FWD, INT, PTR, RESTRICT, STRUCT,
    TYPE_TAG, TYPEDEF, UNION, VAR, VOLATILE, RawTypes,
)
from corebpf.errors import BTFError

if TYPE_CHECKING:  # pragma: no cover
    from corebpf.btf.reader import BTF

__all__ = ["dump_c", "iter_c", "CDumper", "raw_types", "HEADER", "FOOTER"]

HEADER = (
    "#ifndef __VMLINUX_H__\n"
    "#define __VMLINUX_H__\n"
    "\n"
    "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
    "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n"
    "#endif\n"
    "\n"
)
FOOTER = (
    "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
    "#pragma clang attribute pop\n"
    "#endif\n"
    "\n"
    "#endif /* __VMLINUX_H__ */\n"
)

# order_state / emit_state values
_NOT, _BUSY, _DONE = 0, 1, 2
_MODS = (VOLATILE, CONST, RESTRICT, TYPE_TAG)
# GCC's internal Arm SIMD base types that BTF may name without defining (libbpf aliases them too)
_MISSING_BASE_TYPES = {
    "__Poly8_t": "unsigned char", "__Poly16_t": "unsigned short", "__Poly64_t": "unsigned long long",
    "__Poly128_t": "unsigned __int128",
}
_PAD_TYPES = ("long", "int", "short", "char")


def _tabs(level: int, _cache: list[str] = []) -> str:  # noqa: B006 - a deliberate memo
    while len(_cache) <= level:
        _cache.append("\t" * len(_cache))
    return _cache[level]


class CDumper:
    """Writes C declarations for the types of one BTF, remembering what was already written.

    ``dump_type(id)`` appends to :attr:`out` the definitions type ``id`` needs (not written yet) and
    the type itself; calling it for every id in order gives bpftool's ``format c`` body.
    """

    def __init__(self, types: RawTypes) -> None:
        self.t = types
        n = types.last_id + 1
        self.out: list[str] = []
        self._order = bytearray(n)
        self._emit = bytearray(n)
        self._fwd = bytearray(n)
        self._referenced: Optional[bytearray] = None
        self._queue: list[int] = []
        self._type_names: dict[str, int] = {}   # struct/union/enum tags
        self._ident_names: dict[str, int] = {}  # typedefs and enumerators
        self._resolved: dict[int, str] = {}
        self._align: dict[int, int] = {}
        self._size: dict[int, int] = {}

    # -- public -----------------------------------------------------------------------------------
    def dump_type(self, type_id: int) -> None:
        """Append type ``type_id`` and every definition it needs that is not written yet."""
        if not 0 <= type_id <= self.t.last_id:
            raise BTFError(f"BTF type id {type_id} out of range (last id is {self.t.last_id})")
        self._queue = []
        self._order_type(type_id, False)
        for tid in self._queue:
            self._emit_type(tid, 0)

    def take(self) -> str:
        """What was written since the last call, as one string."""
        text = "".join(self.out)
        self.out.clear()
        return text

    # -- layout helpers ---------------------------------------------------------------------------
    def align_of(self, type_id: int) -> int:
        """Alignment in bytes the way libbpf computes it (1 for structs that must be packed)."""
        a = self._align.get(type_id)
        if a is not None:
            return a
        t = self.t
        w, off, kind = t.words, t.offs[type_id], t.kinds[type_id]
        if kind in (INT, ENUM, ENUM64, FLOAT):
            a = min(t.ptr_size, w[off + 2])
        elif kind == PTR:
            a = t.ptr_size
        elif kind in (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG):
            a = self.align_of(w[off + 2])
        elif kind == ARRAY:
            a = self.align_of(w[off + 3])
        elif kind in (STRUCT, UNION):
            a = self._composite_align(type_id)
        elif type_id == 0:
            a = 1
        else:
            raise BTFError(f"BTF type [{type_id}] of kind {kind} has no alignment")
        self._align[type_id] = a
        return a

    def _composite_align(self, type_id: int) -> int:
        t = self.t
        w, off = t.words, t.offs[type_id]
        info = w[off + 1]
        kflag = info >> 31
        best = 1
        p = off + 3
        for _ in range(info & 0xFFFF):
            a = self.align_of(w[p + 1])
            if a > best:
                best = a
            moff = w[p + 2]
            # a non-bitfield member off its natural alignment: the struct is packed
            if (not kflag or not moff >> 24) and (moff & 0xFFFFFF if kflag else moff) % (8 * a):
                return 1
            p += 3
        if w[off + 2] % best:
            return 1
        return best

    def size_of(self, type_id: int) -> int:
        """``sizeof`` type ``type_id`` (typedefs and qualifiers followed, arrays multiplied)."""
        s = self._size.get(type_id)
        if s is not None:
            return s
        t = self.t
        w, kinds, offs = t.words, t.kinds, t.offs
        tid, mult = type_id, 1
        for _ in range(64):
            kind = kinds[tid]
            off = offs[tid]
            if kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
                s = mult * w[off + 2]
                break
            if kind == PTR:
                s = mult * t.ptr_size
                break
            if kind in (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG, VAR):
                tid = w[off + 2]
            elif kind == ARRAY:
                mult *= w[off + 5]
                tid = w[off + 3]
            else:
                s = 0  # void, FWD, FUNC_PROTO: no size (libbpf's resolve_size fails; treated as 0)
                break
            if tid == 0:
                s = 0
                break
        else:
            raise BTFError(f"BTF type [{type_id}]: typedef/array chain too long (a loop?)")
        self._size[type_id] = s
        return s

    def is_packed(self, type_id: int) -> bool:
        """True when a struct cannot be laid out naturally: it needs ``__attribute__((packed))``."""
        t = self.t
        w, off = t.words, t.offs[type_id]
        info = w[off + 1]
        kflag = info >> 31
        best = 1
        p = off + 3
        for _ in range(info & 0xFFFF):
            a = self.align_of(w[p + 1])
            moff = w[p + 2]
            if (not kflag or not moff >> 24) and (moff & 0xFFFFFF if kflag else moff) % (8 * a):
                return True
            if a > best:
                best = a
            p += 3
        return bool(w[off + 2] % best)

    # -- names ------------------------------------------------------------------------------------
    def _resolve_name(self, type_id: int, names: dict[str, int]) -> str:
        name = self._resolved.get(type_id)
        if name is not None:
            return name
        t = self.t
        name = t.name(type_id)
        if not name:
            return ""
        kind = t.kinds[type_id]
        # forward declarations (and enum forwards) name a type defined elsewhere: never renamed
        if kind != FWD and not (kind in (ENUM, ENUM64) and t.vlen(type_id) == 0):
            count = names.get(name, 0) + 1
            names[name] = count
            if count > 1:
                name = f"{name}___{count}"
        self._resolved[type_id] = name
        return name

    def type_name(self, type_id: int) -> str:
        """The C tag name of a struct/union/enum/fwd (with a ``___N`` suffix on conflicts)."""
        return self._resolve_name(type_id, self._type_names)

    def ident_name(self, type_id: int) -> str:
        """The C name of a typedef (with a ``___N`` suffix on conflicts)."""
        return self._resolve_name(type_id, self._ident_names)

    # -- ordering ---------------------------------------------------------------------------------
    def _is_referenced(self, type_id: int) -> bool:
        ref = self._referenced
        if ref is None:
            ref = self._referenced = self._mark_referenced()
        return bool(ref[type_id])

    def _mark_referenced(self) -> bytearray:
        """Which ids some other type refers to (only used to tell lone anonymous enums apart)."""
        t = self.t
        w, offs, kinds = t.words, t.offs, t.kinds
        ref = bytearray(t.last_id + 1)
        for tid in range(1, t.last_id + 1):
            kind = kinds[tid]
            if kind == FUNC:  # refers to a FUNC_PROTO only: cannot matter here
                continue
            off = offs[tid]
            if kind in (PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, VAR, DECL_TAG, TYPE_TAG):
                ref[w[off + 2]] = 1
            elif kind == ARRAY:
                ref[w[off + 3]] = 1
                ref[w[off + 4]] = 1
            elif kind in (STRUCT, UNION, DATASEC):
                vlen = w[off + 1] & 0xFFFF
                first = off + 4 if kind != DATASEC else off + 3
                for p in range(first, first + 3 * vlen, 3):
                    ref[w[p]] = 1
            elif kind == FUNC_PROTO:
                vlen = w[off + 1] & 0xFFFF
                ref[w[off + 2]] = 1
                for p in range(off + 4, off + 4 + 2 * vlen, 2):
                    ref[w[p]] = 1
        return ref

    def _order_type(self, type_id: int, through_ptr: bool) -> bool:
        """Queue the named definitions ``type_id`` needs, then itself if it is a definition.

        Returns True when the type is a *strong* dependency (its full definition is needed where it
        is used), False when a forward declaration would do.
        """
        state = self._order
        if state[type_id] == _DONE:
            return True
        t = self.t
        w, off = t.words, t.offs[type_id]
        kind = t.kinds[type_id]
        if state[type_id] == _BUSY:
            # a loop is fine when it goes through a pointer to a named struct/union (forward declare)
            if kind in (STRUCT, UNION) and through_ptr and w[off]:
                return False
            raise BTFError(f"BTF type [{type_id}]: unsatisfiable type cycle")
        if type_id == 0 or kind in (INT, FLOAT):
            state[type_id] = _DONE
            return False
        if kind == PTR:
            strong = self._order_type(w[off + 2], True)
            state[type_id] = _DONE
            return strong
        if kind == ARRAY:
            return self._order_type(w[off + 3], False)
        if kind in (STRUCT, UNION):
            named = w[off] != 0
            # only embedded or anonymous composites are strong; named ones behind a pointer are not
            if through_ptr and named:
                return False
            state[type_id] = _BUSY
            p = off + 4
            for _ in range(w[off + 1] & 0xFFFF):
                self._order_type(w[p], False)
                p += 3
            if named:
                self._queue.append(type_id)
            state[type_id] = _DONE
            return True
        if kind in (ENUM, ENUM64, FWD):
            # named ones are top-level declarations; so is an anonymous enum nothing refers to
            if w[off] or not self._is_referenced(type_id):
                self._queue.append(type_id)
            state[type_id] = _DONE
            return True
        if kind == TYPEDEF:
            strong = self._order_type(w[off + 2], through_ptr)
            if through_ptr and not strong:
                return False
            self._queue.append(type_id)
            state[type_id] = _DONE
            return True
        if kind in _MODS:
            return self._order_type(w[off + 2], through_ptr)
        if kind == FUNC_PROTO:
            strong = self._order_type(w[off + 2], through_ptr)
            p = off + 4
            for _ in range(w[off + 1] & 0xFFFF):
                if self._order_type(w[p], through_ptr):
                    strong = True
                p += 2
            return strong
        # FUNC, VAR, DATASEC, DECL_TAG: nothing to declare in a header (as bpftool)
        state[type_id] = _DONE
        return False

    # -- emitting ---------------------------------------------------------------------------------
    def _emit_type(self, type_id: int, cont_id: int) -> None:
        """Write ``type_id`` if it is a top-level definition (``cont_id`` 0), or the forward
        declarations a containing definition ``cont_id`` needs from it."""
        emit = self._emit
        if emit[type_id] == _DONE:
            return
        t = self.t
        w, off, kind = t.words, t.offs[type_id], t.kinds[type_id]
        out = self.out
        if emit[type_id] == _BUSY:
            # we are inside this type's own definition: a reference needs a forward declaration
            if self._fwd[type_id]:
                return
            if kind in (STRUCT, UNION):
                if type_id == cont_id or not w[off]:
                    return  # a self-reference needs nothing; anonymous loops cannot be declared
                out.append(self._struct_fwd(type_id))
                out.append(";\n\n")
                self._fwd[type_id] = 1
            elif kind == TYPEDEF:
                if not self._blacklisted(type_id):
                    self._emit_typedef_def(type_id, 0)
                    out.append(";\n\n")
                self._fwd[type_id] = 1
            return
        if type_id == 0:
            return
        if kind == INT:
            alias = _MISSING_BASE_TYPES.get(t.name(type_id))
            if alias is not None:
                out.append(f"typedef {alias} {t.name(type_id)};\n\n")
            emit[type_id] = _DONE
        elif kind in (ENUM, ENUM64):
            if cont_id == 0:
                self._emit_enum_def(type_id, 0)
                out.append(";\n\n")
            emit[type_id] = _DONE
        elif kind == PTR or kind in _MODS:
            self._emit_type(w[off + 2], cont_id)
        elif kind == ARRAY:
            self._emit_type(w[off + 3], cont_id)
        elif kind == FWD:
            out.append(self._fwd_def(type_id))
            out.append(";\n\n")
            emit[type_id] = _DONE
        elif kind == TYPEDEF:
            emit[type_id] = _BUSY
            self._emit_type(w[off + 2], type_id)
            # someone may have needed this typedef as a forward declaration meanwhile
            if not self._fwd[type_id] and not self._blacklisted(type_id):
                self._emit_typedef_def(type_id, 0)
                out.append(";\n\n")
            emit[type_id] = _DONE
        elif kind in (STRUCT, UNION):
            emit[type_id] = _BUSY
            named = w[off] != 0
            if cont_id == 0 or not named:
                # the body will be written: its members' types need declarations first
                inner = type_id if named else cont_id
                p = off + 4
                for _ in range(w[off + 1] & 0xFFFF):
                    self._emit_type(w[p], inner)
                    p += 3
            elif not self._fwd[type_id] and type_id != cont_id:
                out.append(self._struct_fwd(type_id))
                out.append(";\n\n")
                self._fwd[type_id] = 1
            if cont_id == 0:
                self._emit_struct_def(type_id, 0)
                out.append(";\n\n")
                emit[type_id] = _DONE
            else:
                emit[type_id] = _NOT
        elif kind == FUNC_PROTO:
            self._emit_type(w[off + 2], cont_id)
            p = off + 4
            for _ in range(w[off + 1] & 0xFFFF):
                self._emit_type(w[p], cont_id)
                p += 2

    def _blacklisted(self, type_id: int) -> bool:
        # a compiler built-in: redefining it breaks compilation with another compiler
        return self.t.name(type_id) == "__builtin_va_list"

    def _struct_fwd(self, type_id: int) -> str:
        word = "struct" if self.t.kinds[type_id] == STRUCT else "union"
        return f"{word} {self.type_name(type_id)}"

    def _fwd_def(self, type_id: int) -> str:
        word = "union" if self.t.kflag(type_id) else "struct"
        return f"{word} {self.type_name(type_id)}"

    def _emit_typedef_def(self, type_id: int, lvl: int) -> None:
        name = self.ident_name(type_id)
        target = self.t.size_or_type(type_id)
        if target == 0 and name == "__gnuc_va_list":
            # old GCC wrote this typedef to void; the real thing is the compiler's va_list
            self.out.append("typedef __builtin_va_list __gnuc_va_list")
            return
        self.out.append("typedef ")
        self._emit_decl(target, name, lvl)

    def _emit_enum_def(self, type_id: int, lvl: int) -> None:
        t = self.t
        w, off = t.words, t.offs[type_id]
        out = self.out
        info = w[off + 1]
        vlen = info & 0xFFFF
        signed = info >> 31
        size = w[off + 2]
        name = self.type_name(type_id)
        out.append(f"enum {name}" if name else "enum")
        if not vlen:
            return
        out.append(" {")
        pfx = "\n" + _tabs(lvl + 1)
        idents = self._ident_names
        string = t.string
        is64 = t.kinds[type_id] == ENUM64
        step = 3 if is64 else 2
        fits32 = True
        for p in range(off + 3, off + 3 + step * vlen, step):
            vname = string(w[p])
            count = idents.get(vname, 0) + 1
            idents[vname] = count
            if count > 1:
                vname = f"{vname}___{count}"
            if is64:
                hi = w[p + 2]
                if hi:
                    fits32 = False
                v = w[p + 1] | (hi << 32)
                if signed and v >> 63:
                    v -= 1 << 64
                out.append(f"{pfx}{vname} = {v}{'LL' if signed else 'ULL'},")
            else:
                v = w[p + 1]
                if signed and v >> 31:
                    v -= 1 << 32
                out.append(f"{pfx}{vname} = {v},")
        out.append(f"\n{_tabs(lvl)}}}")
        # an enum's size is the compiler's choice; force the unusual ones
        if size == 1:
            out.append(" __attribute__((mode(byte)))")
        elif size == 2:
            out.append(" __attribute__((mode(HI)))")
        elif size == 8 and t.ptr_size == 8 and (not is64 or fits32):
            out.append(" __attribute__((mode(word)))")

    def _emit_struct_def(self, type_id: int, lvl: int) -> None:
        t = self.t
        w, off = t.words, t.offs[type_id]
        out = self.out
        info = w[off + 1]
        vlen = info & 0xFFFF
        kflag = info >> 31
        size = w[off + 2]
        is_struct = t.kinds[type_id] == STRUCT
        packed = is_struct and self.is_packed(type_id)
        align = 1 if packed else self.align_of(type_id)
        name = self.type_name(type_id)
        word = "struct" if is_struct else "union"
        out.append(f"{word} {name} {{" if name else f"{word} {{")
        pfx = "\n" + _tabs(lvl + 1)
        string = t.string
        cur = 0
        prev_bitfield = False
        align_of = self.align_of
        size_of = self.size_of
        for p in range(off + 3, off + 3 + 3 * vlen, 3):
            mtype = w[p + 1]
            moff = w[p + 2]
            if kflag:
                m_bits, m_off = moff >> 24, moff & 0xFFFFFF
            else:
                m_bits, m_off = 0, moff
            m_align = 1 if packed else align_of(mtype)
            if m_off > cur:
                self._emit_padding(cur, m_off, m_align, prev_bitfield and m_bits != 0, lvl + 1)
            out.append(pfx)
            self._emit_decl(mtype, string(w[p]) if w[p] else "", lvl + 1)
            if m_bits:
                out.append(f": {m_bits};")
                cur = m_off + m_bits
                prev_bitfield = True
            else:
                out.append(";")
                cur = m_off + 8 * size_of(mtype)
                prev_bitfield = False
        if is_struct and size * 8 > cur:
            self._emit_padding(cur, size * 8, align, False, lvl + 1)
        if vlen or size:
            out.append(f"\n{_tabs(lvl)}}}")
        else:
            out.append("}")
        if packed:
            out.append(" __attribute__((packed))")

    def _emit_padding(self, cur: int, nxt: int, nxt_align: int, in_bitfield: bool, lvl: int) -> None:
        """Fill bits [cur, nxt) with anonymous bitfields so the next member lands at bit ``nxt``."""
        pad_sizes = (self.t.ptr_size * 8, 32, 16, 8)
        # the widest padding type that can reach an aligned boundary not past the target
        for i, bits in enumerate(pad_sizes):
            new = -(-cur // bits) * bits
            if new <= nxt:
                break
        pad_bits = bits
        pad_type = _PAD_TYPES[i]
        pfx = "\n" + _tabs(lvl)
        out = self.out
        if cur < new <= nxt:
            # `type: 0` jumps to the boundary; needed when the compiler would not get there by itself
            # (next member less aligned, or a following full-width pad would fit in the hole), and
            # inside a bitfield run the jump is spelled with an explicit width
            if in_bitfield or (new == nxt and -(-cur // (nxt_align * 8)) * nxt_align * 8 != new) or \
                    (new != nxt and nxt - new <= new - cur):
                out.append(f"{pfx}{pad_type}: {new - cur if in_bitfield else 0};")
            cur = new
        while cur != nxt:
            bits = min(nxt - cur, pad_bits)
            if bits == pad_bits:
                out.append(f"{pfx}{pad_type}: {pad_bits};")
                cur += bits
                continue
            # the remainder: the smallest type that holds it
            for j in range(len(pad_sizes) - 1, -1, -1):
                if pad_sizes[j] >= bits:
                    out.append(f"{pfx}{_PAD_TYPES[j]}: {bits};")
                    cur += bits
                    break

    # -- declarators ------------------------------------------------------------------------------
    def _emit_decl(self, type_id: int, fname: str, lvl: int) -> None:
        """Write a declaration of ``fname`` with type ``type_id`` (``char *name[4]``, ``int (*f)(void)``)."""
        t = self.t
        w, offs, kinds = t.words, t.offs, t.kinds
        stack = []
        tid = type_id
        while True:
            stack.append(tid)
            if tid == 0:
                break
            kind = kinds[tid]
            if kind == PTR or kind == CONST or kind == VOLATILE or kind == FUNC_PROTO or kind == RESTRICT \
                    or kind == TYPE_TAG:
                tid = w[offs[tid] + 2]
            elif kind == ARRAY:
                tid = w[offs[tid] + 3]
            else:
                break
        if len(stack) == 1:  # the common case: a plain named type
            self._emit_chain(stack, fname, lvl)
            return
        self._emit_chain(stack, fname, lvl)

    def _emit_mods(self, decls: list[int]) -> None:
        kinds = self.t.kinds
        out = self.out
        while decls:
            kind = kinds[decls[-1]]
            if kind == VOLATILE:
                out.append("volatile ")
            elif kind == CONST:
                out.append("const ")
            elif kind == RESTRICT:
                out.append("restrict ")
            else:
                return
            decls.pop()

    def _drop_mods(self, decls: list[int]) -> None:
        kinds = self.t.kinds
        while decls and kinds[decls[-1]] in _MODS:
            decls.pop()

    def _emit_chain(self, decls: list[int], fname: str, lvl: int) -> None:
        t = self.t
        w, offs, kinds = t.words, t.offs, t.kinds
        out = self.out
        last_was_ptr = True
        while decls:
            tid = decls.pop()
            if tid == 0:
                self._emit_mods(decls)
                out.append("void")
                last_was_ptr = False
                continue
            kind = kinds[tid]
            if kind == TYPEDEF:
                self._emit_mods(decls)
                out.append(self.ident_name(tid))
            elif kind == PTR:
                out.append("*" if last_was_ptr else " *")
            elif kind == STRUCT or kind == UNION:
                self._emit_mods(decls)
                if w[offs[tid]]:
                    out.append(self._struct_fwd(tid))
                else:
                    self._emit_struct_def(tid, lvl)
            elif kind == INT or kind == FLOAT:
                self._emit_mods(decls)
                out.append(t.name(tid))
            elif kind == CONST:
                out.append(" const")
            elif kind == VOLATILE:
                out.append(" volatile")
            elif kind == RESTRICT:
                out.append(" restrict")
            elif kind == ENUM or kind == ENUM64:
                self._emit_mods(decls)
                if w[offs[tid]]:
                    out.append(f"enum {self.type_name(tid)}")
                else:
                    self._emit_enum_def(tid, lvl)
            elif kind == FWD:
                self._emit_mods(decls)
                out.append(self._fwd_def(tid))
            elif kind == TYPE_TAG:
                self._emit_mods(decls)
                out.append(f' __attribute__((btf_type_tag("{t.name(tid)}")))')
            elif kind == ARRAY:
                # qualifiers on an array itself mean nothing in C (GCC adds them): drop them
                self._drop_mods(decls)
                nelems = w[offs[tid] + 5]
                if not decls:
                    if fname:
                        out.append(fname if last_was_ptr else " " + fname)
                    out.append(f"[{nelems}]")
                    return
                multidim = kinds[decls[-1]] == ARRAY
                if fname and not last_was_ptr:
                    out.append(" ")
                if not multidim:
                    out.append("(")
                self._emit_chain(decls, fname, lvl)
                if not multidim:
                    out.append(")")
                out.append(f"[{nelems}]")
                return
            elif kind == FUNC_PROTO:
                # GCC marks noreturn function pointers volatile: drop such qualifiers too
                self._drop_mods(decls)
                if decls:
                    out.append(" (")
                    self._emit_chain(decls, fname, lvl)
                    out.append(")")
                elif fname:
                    out.append(fname if last_was_ptr else " " + fname)
                off = offs[tid]
                vlen = w[off + 1] & 0xFFFF
                # no parameters, or clang's single void parameter, is (void)
                if vlen == 0 or (vlen == 1 and w[off + 4] == 0):
                    out.append("(void)")
                    return
                out.append("(")
                p = off + 3
                for i in range(vlen):
                    if i:
                        out.append(", ")
                    ptype = w[p + 1]
                    if i == vlen - 1 and ptype == 0:
                        out.append("...")
                        break
                    self._emit_decl(ptype, t.string(w[p]) if w[p] else "", lvl)
                    p += 2
                out.append(")")
                return
            else:
                raise BTFError(f"BTF type [{tid}] of kind {kind} cannot appear in a C declaration")
            last_was_ptr = kind == PTR
        if fname:
            out.append(fname if last_was_ptr else " " + fname)


# -- entry points ---------------------------------------------------------------------------------
def raw_types(btf: Union["BTF", RawTypes, bytes]) -> RawTypes:
    """A :class:`RawTypes` for a reader :class:`~corebpf.btf.BTF` (its base chain included), or raw bytes."""
    if isinstance(btf, RawTypes):
        return btf
    if isinstance(btf, (bytes, bytearray, memoryview)):
        return RawTypes(bytes(btf))
    chain = []
    b: Optional["BTF"] = btf
    while b is not None:
        chain.append(b)
        b = b.base
    rt: Optional[RawTypes] = None
    for b in reversed(chain):
        rt = RawTypes(b.raw, rt, what=b.name or b.source or "BTF")
    assert rt is not None
    if getattr(btf, "_ptr_size", None):
        rt.ptr_size = btf.pointer_size
    return rt


def _select(types: RawTypes, names: Iterable[Union[str, int]]) -> list[int]:
    """Ids for the requested type names (every type with that name, typedefs included) or ids."""
    ids: list[int] = []
    wanted = [n for n in names if isinstance(n, str)]
    found = types.ids_named(*wanted) if wanted else {}
    missing = []
    for n in names:
        if isinstance(n, int):
            if not 0 < n <= types.last_id:
                raise BTFError(f"BTF type id {n} out of range (last id is {types.last_id})")
            ids.append(n)
            continue
        hits = [tid for tid in found.get(n, []) if types.kinds[tid] not in (FUNC, VAR, DATASEC, DECL_TAG)]
        if not hits:
            missing.append(n)
        ids.extend(hits)
    if missing:
        raise KeyError(", ".join(missing))
    return sorted(set(ids))


def iter_c(btf: Union["BTF", RawTypes, bytes], types: Optional[Iterable[Union[str, int]]] = None, *,
           header: bool = True) -> Iterator[str]:
    """Yield the C header in chunks (see :func:`dump_c`)."""
    rt = raw_types(btf)
    ids: Iterable[int]
    if types is None:
        ids = range(rt.start_id, rt.last_id + 1)
    else:
        ids = _select(rt, list(types))
    dumper = CDumper(rt)
    if header:
        yield HEADER
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))  # type graphs nest deeper than Python's default
    try:
        out = dumper.out
        for tid in ids:
            dumper.dump_type(tid)
            if len(out) > 4096:
                yield dumper.take()
        yield dumper.take()
    finally:
        sys.setrecursionlimit(limit)
    if header:
        yield FOOTER


def dump_c(btf: Union["BTF", RawTypes, bytes], types: Optional[Iterable[Union[str, int]]] = None, *,
           header: bool = True) -> str:
    """The BTF as a C header, like ``bpftool btf dump file X format c``.

    ``btf``: a :class:`corebpf.btf.BTF` (split BTF dumps its own types, with the base types they need),
    a :class:`RawTypes`, or raw BTF bytes. ``types``: only these types (names, matching every
    non-function type of that name, or ids) and what they depend on, in id order. ``header``: wrap in
    the ``__VMLINUX_H__`` guard and the ``preserve_access_index`` pragma. Unknown names raise
    KeyError listing them.
    """
    return "".join(iter_c(btf, types, header=header))
