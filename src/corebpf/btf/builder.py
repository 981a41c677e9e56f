"""Write BTF: a builder for new types, copying types out of another BTF, and loading into the kernel.

:class:`BTFBuilder` keeps types as lists of 32-bit words and a deduplicated string table, and
:meth:`BTFBuilder.encode` lays them out as a BTF blob (either byte order). :func:`load_btf` hands a
blob to ``BPF_BTF_LOAD``: first without a log (fast path), then, on failure, again with a log so the
error carries the kernel's explanation.
"""

from __future__ import annotations

import struct
import sys
from typing import Iterable, Optional, Sequence

from ..errors import BPFError, BTFError
from .reader import BTF, BTF_MAGIC, HEADER_SIZE
from .types import (
    Array, Composite, Datasec, DeclTag, Enum, Float, Func, FuncProto, Fwd, Int, Kind, Pointer, Type, Typedef,
    TypeTag, Union, Var, Void, Const, Volatile, Restrict,
)

__all__ = ["BTFBuilder", "BTFLoadError", "LoadedBTF", "load_btf", "encode_records"]


class BTFLoadError(BPFError, BTFError):
    """The kernel rejected BTF (``BPF_BTF_LOAD``); both a :class:`BPFError` (errno) and a :class:`BTFError`. ``str()`` ends with the log's last line (the reason);
    ``.log`` is all of it."""

    def __init__(self, err: int, log: str) -> None:
        self.log = log
        lines = [line for line in log.strip().splitlines() if line.strip()]
        tail = lines[-1].strip() if lines else ""
        super().__init__(err, "BPF_BTF_LOAD", "", detail=f"kernel rejected the BTF{': ' + tail if tail else ''}")

    def __reduce__(self):
        return (BTFLoadError, (self.errno, self.log))


class LoadedBTF:
    """BTF loaded into the kernel: an owned fd (closed by :meth:`close` / the context manager) and its id."""

    def __init__(self, fd: "object") -> None:
        from .._sys import _generated as g
        from .._sys.ops import obj_get_info_by_fd

        self.fd = fd
        info = g.BtfInfo()
        obj_get_info_by_fd(fd.fileno(), info)  # type: ignore[attr-defined]
        self.id: int = info.id

    def fileno(self) -> int:
        """The BTF object fd."""
        return self.fd.fileno()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the fd (the kernel frees the BTF when nothing else holds it)."""
        self.fd.close()  # type: ignore[attr-defined]

    def __enter__(self) -> "LoadedBTF":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LoadedBTF id={self.id} fd={self.fd!r}>"


def load_btf(data: bytes, *, log_size: int = 1 << 20) -> LoadedBTF:
    """Load a BTF blob with ``BPF_BTF_LOAD``; on failure retry with a log and raise :class:`BTFLoadError`."""
    from .._sys.fd import FD
    from .._sys.ops import btf_load
    from .._sys.syscall import make_error

    ret, _ = btf_load(data)
    if ret >= 0:
        return LoadedBTF(FD(ret))
    err = -ret
    ret2, log = btf_load(data, log_level=1, log_size=log_size)
    if ret2 >= 0:  # loaded the second time (a transient failure): keep it
        return LoadedBTF(FD(ret2))
    if not log.strip():
        e = make_error(-ret2, "BPF_BTF_LOAD", detail="kernel rejected the BTF")
        raise e
    raise BTFLoadError(err, log)


def _u32(v: int) -> int:
    return v & 0xFFFFFFFF


def _info(kind: int, vlen: int, kflag: bool) -> int:
    return (int(kflag) << 31) | ((kind & 0x1F) << 24) | (vlen & 0xFFFF)


def encode_records(records: Iterable[Sequence[int]], strings: bytes, *, byteorder: str = sys.byteorder) -> bytes:
    """A BTF blob from type records (each a sequence of 32-bit words) and a string section."""
    e = "<" if byteorder == "little" else ">"
    body = bytearray()
    for words in records:
        body += struct.pack(f"{e}{len(words)}I", *[_u32(w) for w in words])
    header = struct.pack(f"{e}HBBIIIII", BTF_MAGIC, 1, 0, HEADER_SIZE, 0, len(body), len(body), len(strings))
    return header + bytes(body) + strings


class BTFBuilder:
    """Build a BTF blob type by type. Every ``add_*`` returns the new type's id.

    With ``base`` (a :class:`BTF`), the builder writes split BTF whose ids and string offsets continue
    the base's (what kernel module BTF is).
    """

    def __init__(self, *, byteorder: str = sys.byteorder, base: Optional[BTF] = None) -> None:
        if byteorder not in ("little", "big"):
            raise ValueError("byteorder must be 'little' or 'big'")
        self.byteorder = byteorder
        self.base = base
        self._records: list[list[int]] = []
        self._strtab = bytearray(b"" if base is not None else b"\0")
        self._str_base = (base.str_base + base.header.str_len) if base is not None else 0
        self._strings: dict[str, int] = {} if base is not None else {"": 0}
        self._start = (base.last_id + 1) if base is not None else 1
        self._copied: dict[tuple[int, int], int] = {}

    # -- strings and records ----------------------------------------------------------------------
    def add_string(self, s: str) -> int:
        """Offset of ``s`` in the string section (added once)."""
        off = self._strings.get(s)
        if off is None:
            if "\0" in s:
                raise ValueError(f"BTF strings cannot contain NUL: {s!r}")
            off = self._str_base + len(self._strtab)
            self._strtab += s.encode() + b"\0"
            self._strings[s] = off
        return off

    def _name(self, name: str) -> int:
        return self.add_string(name) if name else 0

    def add_raw(self, words: Sequence[int]) -> int:
        """Append a pre-encoded type record (name offsets must be this builder's); returns its id."""
        self._records.append([_u32(w) for w in words])
        return self._start + len(self._records) - 1

    def _add(self, kind: Kind, name: str, vlen: int, kflag: bool, size_or_type: int, extra: Sequence[int] = ()) -> int:
        if vlen > 0xFFFF:
            raise BTFError(f"{kind.name} {name!r}: {vlen} entries exceed BTF's limit of 65535")
        return self.add_raw([self._name(name), _info(kind, vlen, kflag), size_or_type, *extra])

    @property
    def next_id(self) -> int:
        """The id the next added type will get."""
        return self._start + len(self._records)

    def __len__(self) -> int:
        return len(self._records)

    # -- kinds ------------------------------------------------------------------------------------
    def add_int(self, name: str, size: int, *, signed: bool = False, char: bool = False, bool_: bool = False,
                bits: Optional[int] = None, offset: int = 0) -> int:
        """INT of ``size`` bytes (the kernel allows at most one of signed/char/bool_)."""
        enc = (1 if signed else 0) | (2 if char else 0) | (4 if bool_ else 0)
        nbits = size * 8 if bits is None else bits
        return self._add(Kind.INT, name, 0, False, size, [(enc << 24) | (offset << 16) | nbits])

    def add_float(self, name: str, size: int) -> int:
        """FLOAT of ``size`` bytes."""
        return self._add(Kind.FLOAT, name, 0, False, size)

    def add_ptr(self, type_id: int) -> int:
        """PTR to ``type_id`` (0: ``void *``)."""
        return self._add(Kind.PTR, "", 0, False, type_id)

    def add_array(self, elem_type_id: int, index_type_id: int, nelems: int) -> int:
        """ARRAY of ``nelems`` ``elem_type_id`` indexed by ``index_type_id``."""
        return self._add(Kind.ARRAY, "", 0, False, 0, [elem_type_id, index_type_id, nelems])

    def _composite(self, kind: Kind, name: str, size: int,
                   members: Sequence[tuple[str, int, int] | tuple[str, int, int, int]]) -> int:
        kflag = any(len(m) > 3 and m[3] for m in members)
        extra: list[int] = []
        for m in members:
            mname, mtype, bit_off = m[0], m[1], m[2]
            bf = m[3] if len(m) > 3 else 0  # type: ignore[misc]
            if kflag:
                if bit_off >= 1 << 24 or bf > 255:
                    raise BTFError(f"{name}.{mname}: bit offset {bit_off}/bitfield size {bf} do not fit kind_flag encoding")
                off = (bf << 24) | bit_off
            else:
                off = bit_off
            extra += [self._name(mname), mtype, off]
        return self._add(kind, name, len(members), kflag, size, extra)

    def add_struct(self, name: str, size: int, members: Sequence[tuple] = ()) -> int:
        """``members``: (name, type_id, bit_offset[, bitfield_size]); any bitfield size sets kind_flag."""
        return self._composite(Kind.STRUCT, name, size, members)

    def add_union(self, name: str, size: int, members: Sequence[tuple] = ()) -> int:
        """UNION; ``members`` as for :meth:`add_struct`."""
        return self._composite(Kind.UNION, name, size, members)

    def add_enum(self, name: str, values: Sequence[tuple[str, int]], *, size: int = 4,
                 signed: Optional[bool] = None) -> int:
        """ENUM (or ENUM64 when ``size`` is 8 or a value needs more than 32 bits)."""
        if signed is None:
            signed = any(v < 0 for _, v in values)
        wide = size > 4 or any(not (-(1 << 31) <= v < (1 << 32)) for _, v in values)
        if wide:
            return self.add_enum64(name, values, size=max(size, 8), signed=signed)
        extra: list[int] = []
        for vname, v in values:
            extra += [self._name(vname), _u32(v)]
        return self._add(Kind.ENUM, name, len(values), signed, size, extra)

    def add_enum64(self, name: str, values: Sequence[tuple[str, int]], *, size: int = 8, signed: bool = False) -> int:
        """ENUM64 (kernel 6.0+); ``signed`` sets the kind_flag."""
        extra: list[int] = []
        for vname, v in values:
            v &= (1 << 64) - 1
            extra += [self._name(vname), v & 0xFFFFFFFF, v >> 32]
        return self._add(Kind.ENUM64, name, len(values), signed, size, extra)

    def add_fwd(self, name: str, *, union: bool = False) -> int:
        """FWD declaration of a struct (or union)."""
        return self._add(Kind.FWD, name, 0, union, 0)

    def add_typedef(self, name: str, type_id: int) -> int:
        """TYPEDEF ``name`` of ``type_id``."""
        return self._add(Kind.TYPEDEF, name, 0, False, type_id)

    def add_const(self, type_id: int) -> int:
        """CONST of ``type_id``."""
        return self._add(Kind.CONST, "", 0, False, type_id)

    def add_volatile(self, type_id: int) -> int:
        """VOLATILE of ``type_id``."""
        return self._add(Kind.VOLATILE, "", 0, False, type_id)

    def add_restrict(self, type_id: int) -> int:
        """RESTRICT of ``type_id``."""
        return self._add(Kind.RESTRICT, "", 0, False, type_id)

    def add_type_tag(self, name: str, type_id: int) -> int:
        """TYPE_TAG ``name`` on ``type_id`` (kernel 5.17+)."""
        return self._add(Kind.TYPE_TAG, name, 0, False, type_id)

    def add_func(self, name: str, proto_id: int, linkage: int = 0) -> int:
        """FUNC ``name`` with prototype ``proto_id`` and ``linkage`` (0 static, 1 global, 2 extern)."""
        return self._add(Kind.FUNC, name, int(linkage), False, proto_id)

    def add_func_proto(self, return_type_id: int, params: Sequence[tuple[str, int]] = (), *,
                       variadic: bool = False) -> int:
        """FUNC_PROTO returning ``return_type_id`` with (name, type_id) ``params`` (``...`` if variadic)."""
        extra: list[int] = []
        for pname, ptype in params:
            extra += [self._name(pname), ptype]
        if variadic:
            extra += [0, 0]
        return self._add(Kind.FUNC_PROTO, "", len(extra) // 2, False, return_type_id, extra)

    def add_var(self, name: str, type_id: int, linkage: int = 1) -> int:
        """VAR ``name`` of ``type_id`` (linkage 0 static, 1 global)."""
        return self._add(Kind.VAR, name, 0, False, type_id, [int(linkage)])

    def add_datasec(self, name: str, size: int, vars: Sequence[tuple[int, int, int]] = ()) -> int:
        """``vars``: (var type id, offset, size), sorted by offset."""
        extra: list[int] = []
        for tid, off, sz in vars:
            extra += [tid, off, sz]
        return self._add(Kind.DATASEC, name, len(vars), False, size, extra)

    def add_decl_tag(self, name: str, type_id: int, component_idx: int = -1) -> int:
        """DECL_TAG ``name`` on ``type_id`` (``component_idx`` -1) or its member/parameter."""
        return self._add(Kind.DECL_TAG, name, 0, False, type_id, [component_idx])

    # -- copying ----------------------------------------------------------------------------------
    def copy_type(self, t: Type) -> int:
        """Copy ``t`` and every type it refers to (once each) from its BTF; returns the new id.

        Types of this builder's ``base`` are referred to, not copied.
        """
        if isinstance(t, Void):
            return 0
        b = self.base
        while b is not None:
            if t.btf is b:
                return t.id
            b = b.base
        key = (id(t.btf), t.id)
        done = self._copied.get(key)
        if done is not None:
            return done
        # reserve the id first so cycles (struct -> ptr -> struct) terminate
        new_id = self.add_raw([0, 0, 0])
        self._copied[key] = new_id
        rec = self._encode_copy(t)
        self._records[new_id - self._start] = rec
        return new_id

    def _encode_copy(self, t: Type) -> list[int]:
        c = self.copy_type
        n = self._name(t.name)
        if isinstance(t, Int):
            return [n, _info(Kind.INT, 0, False), t.size, (int(t.encoding) << 24) | (t.offset << 16) | t.bits]
        if isinstance(t, Float):
            return [n, _info(Kind.FLOAT, 0, False), t.size]
        if isinstance(t, Pointer):
            return [n, _info(Kind.PTR, 0, False), c(t.type)]
        if isinstance(t, Array):
            return [n, _info(Kind.ARRAY, 0, False), 0, c(t.elem_type), c(t.index_type), t.nelems]
        if isinstance(t, Composite):
            extra: list[int] = []
            for m in t.members:
                off = (m.bitfield_size << 24) | m.bit_offset if t.kind_flag else m.bit_offset
                extra += [self._name(m.name), c(m.type), off]
            kind = Kind.UNION if isinstance(t, Union) else Kind.STRUCT
            return [n, _info(kind, len(t.members), t.kind_flag), t.size, *extra]
        if isinstance(t, Enum):
            extra = []
            for v in t.values:
                if t.kind == Kind.ENUM64:
                    u = v.value & ((1 << 64) - 1)
                    extra += [self._name(v.name), u & 0xFFFFFFFF, u >> 32]
                else:
                    extra += [self._name(v.name), _u32(v.value)]
            return [n, _info(t.kind, len(t.values), t.signed), t.size, *extra]
        if isinstance(t, Fwd):
            return [n, _info(Kind.FWD, 0, t.is_union), 0]
        if isinstance(t, (Typedef, Const, Volatile, Restrict, TypeTag)):
            return [n, _info(t.kind, 0, False), c(t.type)]
        if isinstance(t, Func):
            return [n, _info(Kind.FUNC, int(t.linkage), False), c(t.type)]
        if isinstance(t, FuncProto):
            extra = []
            for p in t.params:
                extra += [self._name(p.name), c(p.type)]
            return [n, _info(Kind.FUNC_PROTO, len(t.params), False), c(t.return_type), *extra]
        if isinstance(t, Var):
            return [n, _info(Kind.VAR, 0, False), c(t.type), int(t.linkage)]
        if isinstance(t, Datasec):
            extra = []
            for v in t.vars:
                extra += [c(v.type), v.offset, v.size]
            return [n, _info(Kind.DATASEC, len(t.vars), False), t.size, *extra]
        if isinstance(t, DeclTag):
            return [n, _info(Kind.DECL_TAG, 0, False), c(t.type), _u32(t.component_idx)]
        raise BTFError(f"cannot copy {t.kind.name} type [{t.id}]")

    # -- output -----------------------------------------------------------------------------------
    def records(self) -> list[list[int]]:
        """The type records as word lists (ids ``start_id`` onwards)."""
        return [list(r) for r in self._records]

    def string_table(self) -> bytes:
        """The string section built so far."""
        return bytes(self._strtab)

    def encode(self) -> bytes:
        """The BTF blob."""
        return encode_records(self._records, bytes(self._strtab), byteorder=self.byteorder)

    def to_btf(self) -> BTF:
        """Parse what was built (handy for checking it)."""
        return BTF.from_bytes(self.encode(), base=self.base)

    def load(self) -> LoadedBTF:
        """Encode and load into the kernel (native byte order only)."""
        if self.byteorder != sys.byteorder:
            raise BTFError("the kernel only loads BTF in its own byte order")
        return load_btf(self.encode())
