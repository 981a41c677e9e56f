"""Just enough BTF to print function signatures and source lines the way bpftool does.

Private to :mod:`corebpf.asm`: the disassembler needs strings (line info) and a type-only C
rendering of FUNC types (func info headers). ``corebpf.btf`` is the full reader; this module
keeps the disassembler free of it and is used when an object with the same two methods
(``string`` and ``func_signature``) is not supplied.
"""

from __future__ import annotations

import struct
from typing import Optional

from ..errors import BTFError

_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")

# kind numbers (include/uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)

# bytes that follow the 12-byte common header: (fixed, per vlen entry)
_TRAILER = {INT: (4, 0), PTR: (0, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8),
            FWD: (0, 0), TYPEDEF: (0, 0), VOLATILE: (0, 0), CONST: (0, 0), RESTRICT: (0, 0), FUNC: (0, 0),
            FUNC_PROTO: (0, 8), VAR: (4, 0), DATASEC: (0, 12), FLOAT: (0, 0), DECL_TAG: (4, 0),
            TYPE_TAG: (0, 0), ENUM64: (0, 12)}

_SIG_LIMIT = 1024  # bpftool renders into a 1024-byte buffer and drops signatures that overflow


class _Overflow(Exception):
    pass


class MiniBTF:
    """Types and strings of one standalone BTF blob (a program's BTF as the kernel returns it)."""

    def __init__(self, data: bytes) -> None:
        if len(data) < _HEADER.size:
            raise BTFError(f"BTF blob of {len(data)} bytes is shorter than its header")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise BTFError(f"bad BTF magic 0x{magic:04x} at offset 0 (expected 0xeb9f)")
        types_start = hdr_len + type_off
        strs_start = hdr_len + str_off
        if types_start + type_len > len(data) or strs_start + str_len > len(data):
            raise BTFError(f"BTF sections run past the end of the {len(data)}-byte blob")
        self._strings = bytes(data[strs_start:strs_start + str_len])
        self._types: list[tuple[int, int, int, int, int]] = [(0, 0, 0, 0, 0)]  # (kind, name_off, info, size_type, pos)
        self._data = bytes(data)
        pos, end = types_start, types_start + type_len
        while pos < end:
            if pos + 12 > end:
                raise BTFError(f"truncated BTF type at offset {pos}")
            name_off, info, size_type = struct.unpack_from("<III", data, pos)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            if kind not in _TRAILER:
                raise BTFError(f"unknown BTF kind {kind} at offset {pos}")
            fixed, per = _TRAILER[kind]
            self._types.append((kind, name_off, info, size_type, pos + 12))
            pos += 12 + fixed + per * vlen
        if pos != end:
            raise BTFError(f"BTF type section overruns its length at offset {pos}")

    def string(self, offset: int) -> Optional[str]:
        """The NUL-terminated string at ``offset`` (None when out of range, like libbpf)."""
        if not 0 <= offset < len(self._strings):
            return None
        end = self._strings.find(b"\0", offset)
        raw = self._strings[offset:] if end < 0 else self._strings[offset:end]
        return raw.decode("utf-8", "replace")

    def _name(self, offset: int) -> str:
        name = self.string(offset)
        return "(null)" if name is None else name

    def func_signature(self, type_id: int) -> str:
        """bpftool's type-only rendering (``int f(struct xdp_md * ctx)``); "" when it cannot."""
        out: list[str] = []
        try:
            self._type_only(type_id, out)
        except (_Overflow, IndexError, struct.error, ValueError):
            return ""
        return "".join(out)

    def _emit(self, out: list[str], text: str) -> None:
        out.append(text)
        if sum(map(len, out)) >= _SIG_LIMIT:
            raise _Overflow

    def _type_only(self, type_id: int, out: list[str], depth: int = 0) -> None:
        if depth > 64:
            raise ValueError("type chain too deep")
        if not type_id:
            self._emit(out, "void ")
            return
        kind, name_off, info, size_type, pos = self._types[type_id]
        if kind in (INT, TYPEDEF, FLOAT):
            self._emit(out, f"{self._name(name_off)} ")
        elif kind == STRUCT:
            self._emit(out, f"struct {self._name(name_off)} ")
        elif kind == UNION:
            self._emit(out, f"union {self._name(name_off)} ")
        elif kind in (ENUM, ENUM64):
            self._emit(out, f"enum {self._name(name_off)} ")
        elif kind == ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", self._data, pos)
            self._type_only(elem, out, depth + 1)
            self._emit(out, f"[{nelems if nelems < 1 << 31 else nelems - (1 << 32)}]")
        elif kind == PTR:
            self._type_only(size_type, out, depth + 1)
            self._emit(out, "* ")
        elif kind == FWD:
            self._emit(out, f"{'union' if info >> 31 else 'struct'} {self._name(name_off)} ")
        elif kind in (VOLATILE, CONST, RESTRICT):
            self._emit(out, {VOLATILE: "volatile ", CONST: "const ", RESTRICT: "restrict "}[kind])
            self._type_only(size_type, out, depth + 1)
        elif kind == FUNC_PROTO:
            self._func(type_id, None, out, depth)
        elif kind == FUNC:
            self._func(size_type, name_off, out, depth)
        elif kind == VAR:
            (linkage,) = struct.unpack_from("<I", self._data, pos)
            if linkage == 0:  # BTF_VAR_STATIC
                self._emit(out, "static ")
            self._type_only(size_type, out, depth + 1)
            self._emit(out, f" {self._name(name_off)}")
        elif kind == DATASEC:
            self._emit(out, f'section ("{self._name(name_off)}") ')
        else:
            raise ValueError(f"kind {kind} has no type-only form")

    def _func(self, proto_id: int, func_name_off: Optional[int], out: list[str], depth: int) -> None:
        kind, _name_off, info, ret_type, pos = self._types[proto_id]
        if kind != FUNC_PROTO:
            raise ValueError("FUNC does not point at a FUNC_PROTO")
        self._type_only(ret_type, out, depth + 1)
        self._emit(out, f"{self._name(func_name_off)}(" if func_name_off is not None else "(")
        for i in range(info & 0xFFFF):
            arg_name_off, arg_type = struct.unpack_from("<II", self._data, pos + 8 * i)
            if i:
                self._emit(out, ", ")
            if arg_type:
                self._type_only(arg_type, out, depth + 1)
                if arg_name_off:
                    self._emit(out, self._name(arg_name_off))
                elif out and out[-1].endswith(" "):
                    out[-1] = out[-1][:-1]  # an unnamed parameter: drop the separator space
            else:
                self._emit(out, "...")
        self._emit(out, ")")
