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
* **Where we differ from bpftool 7.1** (both are layouts bpftool gets wrong): enums of 1, 2 or 8
  bytes get a ``mode`` attribute (a plain C enum is 4 bytes), and a ``va_list`` member is wrapped
  in an anonymous union with padding, because ``__builtin_va_list`` is the compiler's own type (a
  pointer for ``clang -target bpf``, 24 bytes in x86-64 BTF). Everything else is bpftool's text.
* **Header.** The whole-BTF dump is wrapped in ``#ifndef __VMLINUX_H__`` and the clang pragma that
  applies ``preserve_access_index`` to every record (so CO-RE relocations are recorded), exactly as
  bpftool writes it; ``dump_c(..., header=False)`` leaves both out.

This module depends only on :mod:`corebpf.btf.c_dump_table` (standard library only), so the CLI can
dump without importing numpy; :func:`dump_c` also accepts a :class:`corebpf.btf.BTF`.
"""

from __future__ import annotations

import sys
import weakref
from array import array
from contextlib import contextmanager
from itertools import chain, compress, repeat
from operator import add, and_, mul
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Union

from corebpf.btf.c_dump_table import (
    ARRAY, CONST, DATASEC, DECL_TAG, ENUM, ENUM64, FLOAT, FUNC, FUNC_PROTO, FWD, INT, PTR, RESTRICT, STRUCT,
    TYPE_TAG, TYPEDEF, UNION, VAR, VOLATILE, RawTypes, kind_mask as _kind_mask,
)
from corebpf.btf.c_dump_cache import cache_key, load as cache_load, store as cache_store
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
# kinds that _emit_type just passes through to the type they refer to
_PASS = frozenset((PTR, VOLATILE, CONST, RESTRICT, TYPE_TAG, ARRAY))
# kinds whose ordering as a top-level type only marks them ordered and writes nothing
_SILENT = frozenset((INT, FLOAT, FUNC, VAR, DATASEC, DECL_TAG))
# kind byte -> 1 for kinds the dump walk must visit, 0 for _SILENT ones (and void)
_NOT_SILENT_TABLE = bytes(0 if k in _SILENT or k == 0 else 1 for k in range(256))
_DONE_BYTES = bytes([_DONE])
# GCC's internal Arm SIMD base types that BTF may name without defining (libbpf aliases them too)
_MISSING_BASE_TYPES = {
    "__Poly8_t": "unsigned char", "__Poly16_t": "unsigned short", "__Poly64_t": "unsigned long long",
    "__Poly128_t": "unsigned __int128",
}
_PAD_TYPES = ("long", "int", "short", "char")
#: Largest hole we fill with padding bitfields (1 MiB, 128k lines); beyond is corrupted BTF.
_MAX_PAD_BITS = 8 << 20
# "not computed yet" in CDumper's alignment and size memos
_NO_ALIGN = 0xFF
_NO_SIZE = 0xFFFFFFFF
# stands for the declared name while a declarator is worked out (see CDumper._emit_decl)
_NAME = "\x00"


# "\n" and ``level`` tabs: the start of a line at that nesting level (looked up, not built, per line)
_NLTABS = tuple("\n" + "\t" * i for i in range(32))


def _nltabs(level: int) -> str:
    """``"\n"`` followed by ``level`` tabs."""
    return _NLTABS[level] if level < 32 else "\n" + "\t" * level


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
        self._referenced: Optional[frozenset[int]] = None
        self._queue: list[int] = []
        self._type_names: dict[str, int] = {}   # struct/union/enum tags
        self._ident_names: dict[str, int] = {}  # typedefs and enumerators
        self._resolved: dict[int, str] = {}
        # per-id memos (_NO_ALIGN / _NO_SIZE: not computed yet), as compact as the values allow:
        # a byte per alignment (at most 8), 4 bytes per size (larger sizes are not memoised)
        self._align = bytearray(b"\xff") * n
        self._size = array("I", [_NO_SIZE]) * n
        self._decls: dict[int, str] = {}      # declarator text with _NAME for the name, per type id
        self._inline_defs = 0                 # anonymous struct/enum bodies written so far
        self._va: Optional[frozenset[int]] = None

    # -- public -----------------------------------------------------------------------------------
    def dump_type(self, type_id: int) -> None:
        """Append type ``type_id`` and every definition it needs that is not written yet."""
        if not 0 <= type_id <= self.t.last_id:
            raise BTFError(f"BTF type id {type_id} out of range (last id is {self.t.last_id})")
        with _deep_recursion(), _malformed_as_btf_error():
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
        a = self._align[type_id]
        if a != _NO_ALIGN:
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
        if a < _NO_ALIGN:
            self._align[type_id] = a
        return a

    def _composite_align(self, type_id: int) -> int:
        return self._natural_align(type_id) or 1

    def _natural_align(self, type_id: int) -> int:
        """A struct/union's alignment from its members', or 0 when it must be packed: a member
        that is not a bitfield sits off its natural alignment, or the size is not a multiple."""
        t = self.t
        w, off = t.words, t.offs[type_id]
        info = w[off + 1]
        end = off + 3 + 3 * (info & 0xFFFF)
        memo, align_of = self._align, self.align_of
        best = 1
        # two loops so that the kind_flag test is not made per member (this runs for every struct)
        if info >> 31:  # bitfield sizes in the offsets' top byte: bitfields are never misaligned
            for mtype, moff in zip(w[off + 4:end:3], w[off + 5:end:3]):
                a = memo[mtype]
                if a == _NO_ALIGN:
                    a = align_of(mtype)
                if a > best:
                    best = a
                if moff < 0x1000000 and moff % (8 * a):
                    return 0
        else:
            for mtype, moff in zip(w[off + 4:end:3], w[off + 5:end:3]):
                a = memo[mtype]
                if a == _NO_ALIGN:
                    a = align_of(mtype)
                if a > best:
                    best = a
                if moff % (8 * a):
                    return 0
        return 0 if w[off + 2] % best else best

    def size_of(self, type_id: int) -> int:
        """``sizeof`` type ``type_id`` (typedefs and qualifiers followed, arrays multiplied)."""
        s = self._size[type_id]
        if s != _NO_SIZE:
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
        if s < _NO_SIZE:
            self._size[type_id] = s
        return s

    def is_packed(self, type_id: int) -> bool:
        """True when a struct cannot be laid out naturally: it needs ``__attribute__((packed))``."""
        return self._natural_align(type_id) == 0

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
        name = self._resolved.get(type_id)  # the memo, checked here first: this is called often
        return name if name is not None else self._resolve_name(type_id, self._type_names)

    def ident_name(self, type_id: int) -> str:
        """The C name of a typedef (with a ``___N`` suffix on conflicts)."""
        return self._resolve_name(type_id, self._ident_names)

    # -- ordering ---------------------------------------------------------------------------------
    def _is_referenced(self, type_id: int) -> bool:
        """Whether some type refers to ``type_id``, an anonymous enum (or forward declaration)."""
        ref = self._referenced
        if ref is None:
            ref = self._referenced = self._referenced_anonymous()
        return type_id in ref

    def _referenced_anonymous(self) -> frozenset[int]:
        """The anonymous enums and forwards some other type refers to (the only types ordering asks
        about: a lone anonymous enum is written as a top-level declaration).

        Every reference word of the type table is visited: kind by kind, in generators filtered in
        C by set intersection (no list of every reference: that would be megabytes at the peak).
        """
        t = self.t
        w, offs, kinds = t.words, t.offs, t.kinds
        by_kind = t.ids_by_kind()
        cand = {tid for tid in chain(by_kind[ENUM], by_kind[ENUM64], by_kind[FWD]) if not w[offs[tid]]}
        if not cand:
            return frozenset()
        found: set[int] = set()
        ids_of_kind, keep = by_kind.__getitem__, cand.intersection
        # one type id at a fixed word of the record
        for kind in (PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, VAR, DECL_TAG, TYPE_TAG, FUNC_PROTO):
            found.update(keep(w[offs[tid] + 2] for tid in ids_of_kind(kind)))
        arrays = ids_of_kind(ARRAY)
        found.update(keep(w[offs[tid] + 3] for tid in arrays), keep(w[offs[tid] + 4] for tid in arrays))
        # one type id per member / parameter / variable: a strided slice of each record
        for kind, first, step in ((STRUCT, 4, 3), (UNION, 4, 3), (DATASEC, 3, 3), (FUNC_PROTO, 4, 2)):
            found.update(keep(chain.from_iterable(
                w[off + first:off + first + step * (w[off + 1] & 0xFFFF):step]
                for off in map(offs.__getitem__, ids_of_kind(kind)))))
        return frozenset(found)

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
            order_type = self._order_type
            for m in w[off + 4:off + 4 + 3 * (w[off + 1] & 0xFFFF):3]:
                if state[m] != _DONE:
                    order_type(m, False)
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
            ret = w[off + 2]
            strong = state[ret] == _DONE or self._order_type(ret, through_ptr)
            for p in range(off + 4, off + 4 + 2 * (w[off + 1] & 0xFFFF), 2):
                param = w[p]
                # an ordered type answers True without a call (see the top of this method)
                if state[param] == _DONE or self._order_type(param, through_ptr):
                    strong = True
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
                kinds, offs, fwd = t.kinds, t.offs, self._fwd
                emit_type = self._emit_type
                for m in w[off + 4:off + 4 + 3 * (w[off + 1] & 0xFFFF):3]:
                    # pointers, qualifiers and arrays only pass the visit on: skip them here
                    k = kinds[m]
                    while k in _PASS and m:
                        m = w[offs[m] + (3 if k == ARRAY else 2)]
                        k = kinds[m]
                    # a named struct/union already forward-declared needs nothing more here
                    if emit[m] != _DONE and not (fwd[m] and (k == STRUCT or k == UNION)):
                        emit_type(m, inner)
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
            kinds, offs, fwd = t.kinds, t.offs, self._fwd
            for m in (w[off + 2], *w[off + 4:off + 4 + 2 * (w[off + 1] & 0xFFFF):2]):
                # as for struct members: skip what only passes the visit on, or cannot need anything
                k = kinds[m]
                while k in _PASS and m:
                    m = w[offs[m] + (3 if k == ARRAY else 2)]
                    k = kinds[m]
                if emit[m] != _DONE and not (fwd[m] and (k == STRUCT or k == UNION)):
                    self._emit_type(m, cont_id)

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
        pfx = _NLTABS[lvl + 1] if lvl < 31 else _nltabs(lvl + 1)
        idents = self._ident_names
        string = t.string
        is64 = t.kinds[type_id] == ENUM64
        fits32 = True
        if not is64:
            # the common case, with the name lookup inlined: vmlinux has ~19k enumerators
            sbuf, spos, send = t._sbuf, t._spos, t._send
            end = off + 3 + 2 * vlen
            for name_off, v in zip(w[off + 3:end:2], w[off + 4:end:2]):
                pos = spos + name_off
                nul = sbuf.find(b"\0", pos, send)
                vname = sbuf[pos:nul].decode("utf-8", "replace") if nul >= 0 else string(name_off)
                count = idents.get(vname)
                if count is None:
                    idents[vname] = 1
                else:
                    idents[vname] = count = count + 1
                    vname = f"{vname}___{count}"
                if signed and v >> 31:
                    v -= 1 << 32
                out.append(f"{pfx}{vname} = {v},")
        else:
            for p in range(off + 3, off + 3 + 3 * vlen, 3):
                vname = string(w[p])
                count = idents.get(vname, 0) + 1
                idents[vname] = count
                if count > 1:
                    vname = f"{vname}___{count}"
                hi = w[p + 2]
                if hi:
                    fits32 = False
                v = w[p + 1] | (hi << 32)
                if signed and v >> 63:
                    v -= 1 << 64
                out.append(f"{pfx}{vname} = {v}{'LL' if signed else 'ULL'},")
        out.append(f"{_NLTABS[lvl] if lvl < 32 else _nltabs(lvl)}}}")
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
        is_struct = t.kinds[type_id] == STRUCT
        # align_of() is 1 exactly when a struct is packed or only has 1-byte members (and it is
        # usually known already): the full check runs only then
        packed = is_struct and self.align_of(type_id) == 1 and self.is_packed(type_id)
        name = self.type_name(type_id)
        word = "struct" if is_struct else "union"
        out.append(f"{word} {name} {{" if name else f"{word} {{")
        pfx = _NLTABS[lvl + 1] if lvl < 31 else _nltabs(lvl + 1)
        string = t.string
        sbuf, spos, send = t._sbuf, t._spos, t._send
        sizes, size_of = self._size, self.size_of
        emit_decl, decls_get = self._emit_decl, self._decls.get
        va_types = self._va_types()
        cur = 0
        prev_bitfield = False
        end = off + 3 + 3 * vlen
        # strided slices pull each member's three words out in C. (Writing a whole body with map()
        # chains instead, names sliced and templates filled in C, was measured slower: +18% of
        # the dump's instructions under callgrind; bodies average 6 members, and on CPython 3.11
        # each map/list/min call costs more than a specialised loop over so few items.)
        for name_off, mtype, moff in zip(w[off + 3:end:3], w[off + 4:end:3], w[off + 5:end:3]):
            if kflag:
                m_bits, m_off = moff >> 24, moff & 0xFFFFFF
            else:
                m_bits, m_off = 0, moff
            if m_off > cur:
                self._emit_padding(cur, m_off, 1 if packed else self.align_of(mtype),
                                   prev_bitfield and m_bits != 0, lvl + 1)
            # va_list types never have a cached declarator (see _emit_decl): no test on this path
            hit = decls_get(mtype) if name_off else None
            if hit is not None:  # the common case, inlined: a declarator seen before
                pos = spos + name_off  # string(name_off), inlined: this loop runs once per member
                fname = sbuf[pos:sbuf.find(b"\0", pos, send)].decode("utf-8", "replace")
                if m_bits:
                    out.append(f"{pfx}{hit.replace(_NAME, fname)}: {m_bits};")  # type: ignore[union-attr]
                    cur = m_off + m_bits
                    prev_bitfield = True
                    continue
                out.append(f"{pfx}{hit.replace(_NAME, fname)};")  # type: ignore[union-attr]
            else:
                if va_types and mtype in va_types and not m_bits:
                    self._emit_va_member(mtype, string(name_off), lvl + 1)
                    size = sizes[mtype]
                    cur = m_off + 8 * (size if size != _NO_SIZE else size_of(mtype))
                    prev_bitfield = False
                    continue
                out.append(pfx)
                emit_decl(mtype, string(name_off) if name_off else "", lvl + 1)
                if m_bits:
                    out.append(f": {m_bits};")
                    cur = m_off + m_bits
                    prev_bitfield = True
                    continue
                out.append(";")
            size = sizes[mtype]
            cur = m_off + 8 * (size if size != _NO_SIZE else size_of(mtype))
            prev_bitfield = False
        size = w[off + 2]
        if is_struct and size * 8 > cur:
            self._emit_padding(cur, size * 8, 1 if packed else self.align_of(type_id), False, lvl + 1)
        if vlen or size:
            out.append(f"{_NLTABS[lvl] if lvl < 32 else _nltabs(lvl)}}}")
        else:
            out.append("}")
        if packed:
            out.append(" __attribute__((packed))")

    def _va_types(self) -> frozenset[int]:
        """Ids of the typedefs and qualifiers that lead to the ``__builtin_va_list`` typedef."""
        found = self._va
        if found is not None:
            return found
        t = self.t
        w, offs, kinds = t.words, t.offs, t.kinds
        ids = {tid for tid in t.ids_named("__builtin_va_list")["__builtin_va_list"] if kinds[tid] == TYPEDEF}
        if ids:
            # (id, referenced id) of every typedef and qualifier, then grow the set to a fixed point
            mask = kinds.translate(_kind_mask(TYPEDEF, CONST, VOLATILE, TYPE_TAG))
            refs = list(compress(range(len(kinds)), mask))
            targets = list(map(w.__getitem__, map(add, compress(offs, mask), repeat(2))))
            while True:
                grown = ids.union(compress(refs, map(ids.__contains__, targets)))
                if len(grown) == len(ids):
                    break
                ids = grown
        self._va = found = frozenset(ids)
        return found

    def _emit_va_member(self, type_id: int, fname: str, lvl: int) -> None:
        """A ``va_list`` member, sized as in the kernel whatever the compiler's own va_list is.

        ``__builtin_va_list`` is the compiler's: 24 bytes on x86-64 (what BTF records), a pointer
        on the BPF target. Declaring the member inside an anonymous union with an anonymous struct
        of padding gives it the kernel's size on every target, and ``fname`` stays accessible.
        """
        out = self.out
        pfx = _nltabs(lvl)
        out.append(f"{pfx}union {{{pfx}\t")
        self._emit_decl(type_id, fname, lvl + 1)
        out.append(f";{pfx}\tstruct {{")
        self._emit_padding(0, 8 * self.size_of(type_id), 1, False, lvl + 2)
        out.append(f"{pfx}\t}};{pfx}}};")

    def _emit_padding(self, cur: int, nxt: int, nxt_align: int, in_bitfield: bool, lvl: int) -> None:
        """Fill bits [cur, nxt) with anonymous bitfields so the next member lands at bit ``nxt``."""
        if nxt - cur > _MAX_PAD_BITS:
            # one line per 8 bytes: a corrupted size would print (and hold) gigabytes
            raise BTFError(f"malformed BTF: a gap of {(nxt - cur) // 8} bytes between struct members "
                           f"(more than {_MAX_PAD_BITS // 8}) is not plausible")
        pad_sizes = (self.t.ptr_size * 8, 32, 16, 8)
        # the widest padding type that can reach an aligned boundary not past the target
        for i, bits in enumerate(pad_sizes):
            new = -(-cur // bits) * bits
            if new <= nxt:
                break
        pad_bits = bits
        pad_type = _PAD_TYPES[i]
        pfx = _nltabs(lvl)
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
        """Write a declaration of ``fname`` with type ``type_id`` (``char *name[4]``, ``int (*f)(void)``).

        The text around the name depends only on the type, unless it holds an anonymous struct/enum
        written inline (those print their body, indented, and number their enumerators), so it is
        worked out once per type and reused.
        """
        out = self.out
        key = type_id if fname else ~type_id
        hit = self._decls.get(key)
        if hit is not None:
            out.append(hit.replace(_NAME, fname) if fname else hit)
            return
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
        start = len(out)
        inline_before = self._inline_defs
        self._emit_chain(stack, _NAME if fname else "", lvl)
        text = "".join(out[start:])
        del out[start:]
        out.append(text.replace(_NAME, fname) if fname else text)
        # not cached: declarators with an anonymous body (they number enumerators), and va_list
        # types (struct members of those types are written differently, see _emit_struct_def)
        if self._inline_defs == inline_before and type_id not in self._va_types():
            self._decls[key] = text

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
                    self._inline_defs += 1
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
                    self._inline_defs += 1
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
    rt = _RAW_OF.get(btf)
    if rt is None:
        base = raw_types(btf.base) if btf.base is not None else None
        rt = RawTypes(btf.raw, base, what=btf.name or btf.source or "BTF")
        if getattr(btf, "_ptr_size", None):
            rt.ptr_size = btf.pointer_size
        try:
            _RAW_OF[btf] = rt  # vmlinux is shared per process: build its table once too
        except TypeError:  # pragma: no cover - an object that cannot be weakly referenced
            pass
    return rt


# reader BTF -> its table (dropped with the BTF)
_RAW_OF: "weakref.WeakKeyDictionary[BTF, RawTypes]" = weakref.WeakKeyDictionary()


@contextmanager
def _malformed_as_btf_error() -> Iterator[None]:
    """Records are not validated up front (it would cost a pass over every type): a reference to a
    type id past the end, or a loop of references, surfaces here and becomes a BTFError."""
    try:
        yield
    except IndexError as e:
        raise BTFError(f"malformed BTF: a type refers to a type id or word past the end ({e})") from None
    except RecursionError:
        raise BTFError("malformed BTF: types refer to each other in a loop that C cannot express") from None


@contextmanager
def _deep_recursion(depth: int = 10000) -> Iterator[None]:
    """Python's default recursion limit (1000) is below what deep type graphs need."""
    limit = sys.getrecursionlimit()
    if limit < depth:
        sys.setrecursionlimit(depth)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


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


def _blobs(btf: Union["BTF", RawTypes, bytes]) -> tuple[bytes, ...]:
    if isinstance(btf, RawTypes):
        return btf.blobs
    if isinstance(btf, (bytes, bytearray, memoryview)):
        return (bytes(btf),)
    chain = []
    b: Optional["BTF"] = btf
    while b is not None:
        chain.append(b.raw)
        b = b.base
    return tuple(reversed(chain))


def iter_c(btf: Union["BTF", RawTypes, bytes], types: Optional[Iterable[Union[str, int]]] = None, *,
           header: bool = True, cache: bool = False) -> Iterator[str]:
    """Yield the C header in chunks (see :func:`dump_c`)."""
    if cache and types is None:
        key = cache_key(_blobs(btf), f"header={int(header)}")
        hit = cache_load(key)
        if hit is not None:
            yield from hit
            return
        yield from cache_store(key, _generate(raw_types(btf), None, header))
        return
    yield from _generate(raw_types(btf), types, header)


def _generate(rt: RawTypes, types: Optional[Iterable[Union[str, int]]], header: bool) -> Iterator[str]:
    ids: Iterable[int]
    dumper = CDumper(rt)
    order = dumper._order
    if types is None:
        # split BTF too is dumped from id 1, base types included: one header that has it all (bpftool
        # does the same; a second header with the base's types would clash with vmlinux.h).
        # Ids of silent kinds (half of vmlinux: functions) are not visited one by one: the ids
        # between two others are all silent and get their "ordered" mark in one slice assignment
        # when the walk passes them, which is when ordering them one by one would have.
        candidates = compress(range(rt.last_id + 1), rt.kinds.translate(_NOT_SILENT_TABLE))
        ids = _mark_silent_gaps(candidates, order)
    else:
        ids = _select(rt, list(types))
    if header:
        yield HEADER
    with _deep_recursion(), _malformed_as_btf_error():
        out = dumper.out
        kinds, w, offs = rt.kinds, rt.words, rt.offs
        for tid in ids:
            if order[tid] == _DONE:
                continue  # already ordered: dumping it again would write nothing
            kind = kinds[tid]
            if kind in _SILENT:
                order[tid] = _DONE  # what ordering would do, without the call
                continue
            # shortcuts for what ordering would find has nothing to queue (most of the calls):
            # a pointer to an ordered type or to a named struct/union, a function prototype or a
            # qualifier whose types are all ordered
            if kind == PTR:
                target = w[offs[tid] + 2]
                k = kinds[target]
                if order[target] == _DONE or ((k == STRUCT or k == UNION) and w[offs[target]]):
                    order[tid] = _DONE
                    continue
            elif kind == FUNC_PROTO:
                off = offs[tid]
                if order[w[off + 2]] == _DONE:
                    for p in w[off + 4:off + 4 + 2 * (w[off + 1] & 0xFFFF):2]:
                        if order[p] != _DONE:
                            break
                    else:
                        continue
            elif kind in _MODS and order[w[offs[tid] + 2]] == _DONE:
                continue
            queue = dumper._queue = []
            dumper._order_type(tid, False)
            for q in queue:
                dumper._emit_type(q, 0)
            if len(out) > 4096:
                yield dumper.take()
        yield dumper.take()
    if header:
        yield FOOTER


def _mark_silent_gaps(candidates: Iterable[int], order: bytearray) -> Iterator[int]:
    """Yield ``candidates`` (ascending), marking every id between two of them ordered first."""
    prev = 0
    for tid in candidates:
        if tid > prev + 1:
            order[prev + 1:tid] = _DONE_BYTES * (tid - prev - 1)
        prev = tid
        yield tid
    last = len(order) - 1
    if last > prev:
        order[prev + 1:] = _DONE_BYTES * (last - prev)


def dump_c(btf: Union["BTF", RawTypes, bytes], types: Optional[Iterable[Union[str, int]]] = None, *,
           header: bool = True, cache: bool = False) -> str:
    """The BTF as a C header, like ``bpftool btf dump file X format c``.

    ``btf``: a :class:`corebpf.btf.BTF` (for split BTF, module types come after all of the base's, as
    bpftool does), a :class:`RawTypes`, or raw BTF bytes. ``types``: only these types (names, matching every
    non-function type of that name, or ids) and what they depend on, in id order. ``header``: wrap in
    the ``__VMLINUX_H__`` guard and the ``preserve_access_index`` pragma. Unknown names raise
    KeyError listing them. ``cache``: reuse (or store) a full dump in the on-disk cache
    (:mod:`corebpf.btf.c_dump_cache`), keyed by the BTF's bytes.
    """
    return "".join(iter_c(btf, types, header=header, cache=cache))
