"""The BTF container: header, lazy type decoding, lookup by id and by name.

Opening a BTF validates the header and scans the type section once (see :mod:`.index`); a type is
decoded into a :mod:`.types` object the first time it is asked for and kept. Split BTF (kernel
modules) continues the ids and the string offsets of its base (vmlinux) BTF.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union as TUnion

import numpy as np

from ..errors import BTFError
from . import types as T
from .index import MAX_KIND, TypeIndex, build_index, name_key, record_words
from .types import Kind, essential_name

__all__ = ["BTF", "Header", "parse_header", "BTF_MAGIC", "VMLINUX_PATH"]

BTF_MAGIC = 0xEB9F
HEADER_SIZE = 24
VMLINUX_PATH = "/sys/kernel/btf/vmlinux"
#: The kernel's limits (include/uapi/linux/btf.h): beyond these the BTF is not sane.
MAX_TYPE_ID = 0xFFFFF
MAX_NAME_OFFSET = 0xFFFFFF

Bytes = TUnion[bytes, bytearray, memoryview]


@dataclass(frozen=True)
class Header:
    """The ``struct btf_header`` of a BTF blob."""

    byteorder: str  # "little" or "big"
    version: int
    flags: int
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int

    @property
    def types_pos(self) -> int:
        """Byte offset of the type section from the start of the blob."""
        return self.hdr_len + self.type_off

    @property
    def strings_pos(self) -> int:
        """Byte offset of the string section from the start of the blob."""
        return self.hdr_len + self.str_off


def parse_header(data: Bytes) -> Header:
    """Parse and sanity-check the BTF header (raises :class:`BTFError` naming the offset)."""
    size = len(data)
    if size < 8:
        raise BTFError(f"BTF truncated at offset {size}: {size} bytes, a header needs {HEADER_SIZE}")
    magic_le = struct.unpack_from("<H", data, 0)[0]
    if magic_le == BTF_MAGIC:
        order, e = "little", "<"
    elif magic_le == 0x9FEB:
        order, e = "big", ">"
    else:
        raise BTFError(f"not BTF at offset 0: magic {magic_le:#06x}, expected 0xeb9f")
    version, flags, hdr_len = struct.unpack_from(f"{e}BBI", data, 2)
    if version != 1:
        raise BTFError(f"BTF at offset 2: unsupported version {version} (only 1 exists)")
    if hdr_len < HEADER_SIZE:
        raise BTFError(f"BTF at offset 4: header length {hdr_len} is shorter than {HEADER_SIZE}")
    if hdr_len > size:
        raise BTFError(f"BTF truncated at offset {size}: header length {hdr_len} exceeds the {size} bytes")
    type_off, type_len, str_off, str_len = struct.unpack_from(f"{e}IIII", data, 8)
    h = Header(order, version, flags, hdr_len, type_off, type_len, str_off, str_len)
    if type_off % 4:
        raise BTFError(f"BTF at offset 8: type section offset {type_off} is not 4-byte aligned")
    if type_len % 4:
        raise BTFError(f"BTF at offset 12: type section length {type_len} is not a multiple of 4")
    for what, pos, length, field in (("type", h.types_pos, type_len, 8), ("string", h.strings_pos, str_len, 16)):
        if pos + length > size:
            raise BTFError(f"BTF truncated at offset {size}: {what} section [{pos}, {pos + length}) "
                           f"(header field at offset {field}) runs past the end")
    if h.types_pos < h.strings_pos < h.types_pos + type_len or \
            h.strings_pos < h.types_pos < h.strings_pos + str_len:
        raise BTFError(f"BTF at offset 8: type and string sections overlap")
    if str_len > MAX_NAME_OFFSET + 1:
        raise BTFError(f"BTF at offset 20: string section of {str_len} bytes exceeds the kernel's limit")
    return h


class BTF:
    """A parsed BTF blob (vmlinux, a module's split BTF, or an object's ``.BTF``).

    ``btf[type_id]`` gives a type object; ``len(btf)`` is the number of types this blob defines
    (ids ``start_id .. last_id``; void, id 0, is not counted) and iterating yields them.
    For split BTF, ids below ``start_id`` are looked up in ``base``.
    """

    def __init__(self, data: Bytes, base: Optional["BTF"] = None, *, index: Optional[TypeIndex] = None,
                 header: Optional[Header] = None, name: str = "", source: str = "",
                 length: Optional[int] = None) -> None:
        self._data = data
        self._length = len(data) if length is None else length
        self._raw: Optional[bytes] = None
        self.base = base
        self.name = name
        self.source = source
        self.header = h = header or parse_header(memoryview(data)[:self._length] if length is not None else data)
        self.byteorder = h.byteorder
        self._e = "<" if h.byteorder == "little" else ">"
        if base is not None and base.byteorder != h.byteorder:
            raise BTFError("split BTF and its base BTF differ in byte order")
        self.start_id = (base.last_id + 1) if base is not None else 1
        self.str_base = (base.str_base + base.header.str_len) if base is not None else 0
        self._types_pos = h.types_pos
        self._types_end = h.types_pos + h.type_len
        self._str_pos = h.strings_pos
        self._str_end = h.strings_pos + h.str_len
        self._words = np.frombuffer(data, dtype=np.dtype(self._e + "u4"), count=h.type_len // 4, offset=h.types_pos)
        self._strings = np.frombuffer(data, dtype=np.uint8, count=h.str_len, offset=h.strings_pos)
        if h.str_len:
            if self._strings[-1] != 0:
                raise BTFError(f"BTF string section at offset {self._str_end - 1}: not NUL-terminated")
            if base is None and self._strings[0] != 0:
                raise BTFError(f"BTF string section at offset {self._str_pos}: the first string must be empty")
        if index is None:
            index = build_index(self._words, h.types_pos, self._strings, self.str_base,
                                base._all_strings() if base is not None else None)
        self._index = index
        self._offsets: list[int] = index.offsets.tolist() if len(index) < 4096 else []
        self.last_id = self.start_id + len(index) - 1
        if self.last_id > MAX_TYPE_ID:
            raise BTFError(f"BTF at offset {h.types_pos}: {len(index)} types exceed the kernel's limit")
        self._types: dict[int, T.Type] = {}
        self._str_cache: dict[int, str] = {}
        self._ptr_size: Optional[int] = None
        self.from_cache = False  # set by the index cache when the index came from disk

    # -- constructors -----------------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: Bytes, base: Optional["BTF"] = None, *, name: str = "") -> "BTF":
        """Parse raw BTF bytes (split BTF on top of ``base`` if given)."""
        if isinstance(data, memoryview):
            data = data.tobytes()
        return cls(data, base, name=name, source="<bytes>")

    @classmethod
    def from_file(cls, path: "str | os.PathLike[str]", base: Optional["BTF"] = None, *, cache: bool = True) -> "BTF":
        """Open raw BTF, an ELF file's ``.BTF`` section (objects, vmlinux images) or a BTFHub
        ``.btf.tar.xz``/``.btf.xz`` (the format is told by the first bytes).

        Raw BTF, vmlinux-sized ELF images and archives go through the on-disk index cache unless
        ``cache=False`` (see :mod:`corebpf.btf.index_cache`); small ELF objects are parsed directly.
        """
        from .archive import open_btf_file

        return open_btf_file(cls, Path(path), base, cache=cache)

    _shared_lock = threading.Lock()
    _vmlinux: Optional["BTF"] = None
    _modules: dict[str, "BTF"] = {}
    #: Where the kernel publishes its BTF (vmlinux and one file per module with BTF).
    sysfs_dir: Path = Path("/sys/kernel/btf")

    @classmethod
    def vmlinux(cls, *, cache: bool = True) -> "BTF":
        """The running kernel's BTF (``/sys/kernel/btf/vmlinux``, else a vmlinux image with ``.BTF``
        in the usual places), opened once per process and shared."""
        with cls._shared_lock:
            if cls._vmlinux is None:
                cls._vmlinux = cls.from_file(_find_vmlinux(cls.sysfs_dir / "vmlinux"), cache=cache)
                cls._vmlinux.name = "vmlinux"
            return cls._vmlinux

    @classmethod
    def module(cls, name: str, *, cache: bool = True) -> "BTF":
        """A kernel module's split BTF (``/sys/kernel/btf/<name>``) on top of :meth:`vmlinux`; shared."""
        if name == "vmlinux":
            return cls.vmlinux(cache=cache)
        if "/" in name or name.startswith("."):
            raise BTFError(f"invalid module name {name!r}")
        base = cls.vmlinux(cache=cache)
        with cls._shared_lock:
            btf = cls._modules.get(name)
            if btf is None:
                path = cls.sysfs_dir / name
                if not path.exists():
                    raise BTFError(f"no BTF for module {name!r}: {path} does not exist "
                                   "(is the module loaded, and built with CONFIG_DEBUG_INFO_BTF_MODULES?)")
                btf = cls.from_file(path, base, cache=cache)
                btf.name = name
                cls._modules[name] = btf
            return btf

    @classmethod
    def from_id(cls, btf_id: int) -> "BTF":
        """A BTF object loaded in the kernel, by id (module BTF on top of :meth:`vmlinux`)."""
        from .loaded import btf_from_id

        return btf_from_id(btf_id)

    @classmethod
    def module_names(cls) -> list[str]:
        """Names of the kernel modules that have BTF under ``/sys/kernel/btf``."""
        try:
            return sorted(n for n in os.listdir(cls.sysfs_dir) if n != "vmlinux")
        except OSError:
            return []

    # -- raw access -------------------------------------------------------------------------------
    @property
    def raw(self) -> bytes:
        """The BTF blob (header, types, strings) as bytes (copied once from a cache mmap, then kept)."""
        d = self._data
        if isinstance(d, bytes) and len(d) == self._length:
            return d
        if self._raw is None:
            self._raw = bytes(d[:self._length])
        return self._raw

    @property
    def buffer(self) -> memoryview:
        """The BTF blob without a copy (a view of the bytes or of the cache file's mmap)."""
        return memoryview(self._data)[:self._length]

    @property
    def index(self) -> TypeIndex:
        """The type offset and name index (used by the index cache)."""
        return self._index

    def _all_strings(self) -> np.ndarray:
        """Every string of this BTF and its bases, concatenated in offset order (uint8)."""
        if self.base is None:
            return self._strings
        return np.concatenate([self.base._all_strings(), self._strings])

    def string_at(self, offset: int) -> str:
        """The NUL-terminated string at ``offset`` of the string section (base strings first for split BTF)."""
        s = self._str_cache.get(offset)
        if s is not None:
            return s
        if offset < self.str_base:
            assert self.base is not None
            return self.base.string_at(offset)
        pos = self._str_pos + offset - self.str_base
        if pos >= self._str_end:
            raise BTFError(f"BTF string offset {offset} is past the end of the string section "
                           f"({self.str_base + self.header.str_len} bytes)")
        # most names are short: slice a little and look for the NUL there (cheaper than find on an mmap)
        chunk = self._data[pos:min(pos + 96, self._str_end)]
        n = chunk.find(b"\0")
        if n >= 0:
            s = bytes(chunk[:n]).decode("utf-8", "replace")
        else:
            end = self._data.find(b"\0", pos, self._str_end)
            if end < 0:  # impossible after the NUL-terminated check, kept for safety
                raise BTFError(f"BTF string at offset {offset} is not NUL-terminated")
            s = bytes(self._data[pos:end]).decode("utf-8", "replace")
        self._str_cache[offset] = s
        return s

    def _offset_of(self, type_id: int) -> int:
        i = type_id - self.start_id
        if self._offsets:
            return self._offsets[i]
        return int(self._index.offsets[i])

    def _check_id(self, type_id: int) -> None:
        if not (0 <= type_id <= self.last_id):
            raise BTFError(f"BTF type id {type_id} out of range (last id is {self.last_id})")

    def kind_of(self, type_id: int) -> Kind:
        """The kind of a type without decoding it (UNKN for void)."""
        if type_id == 0:
            return Kind.UNKN
        if type_id < self.start_id:
            if self.base is None:
                self._check_id(type_id)
            return self.base.kind_of(type_id)  # type: ignore[union-attr]
        self._check_id(type_id)
        return Kind((int(self._words[self._offset_of(type_id) + 1]) >> 24) & 0x1F)

    def name_of(self, type_id: int) -> str:
        """The name of a type without decoding it ('' for void and anonymous types)."""
        if type_id == 0:
            return ""
        if type_id < self.start_id:
            if self.base is None:
                self._check_id(type_id)
            return self.base.name_of(type_id)  # type: ignore[union-attr]
        self._check_id(type_id)
        return self.string_at(int(self._words[self._offset_of(type_id)]))

    # -- types ------------------------------------------------------------------------------------
    def __getitem__(self, type_id: int) -> T.Type:
        t = self._types.get(type_id)
        if t is not None:
            return t
        if type_id == 0:
            t = T.Void(self)
        elif type_id < self.start_id:
            if self.base is None:
                raise BTFError(f"BTF type id {type_id} out of range (ids start at 1)")
            return self.base[type_id]
        else:
            self._check_id(type_id)
            try:
                t = self._decode(type_id)
            except BTFError as e:
                if " at offset " in str(e):
                    raise
                pos = self._types_pos + 4 * self._offset_of(type_id)
                raise BTFError(f"BTF type [{type_id}] at offset {pos}: {e}") from None
        self._types[type_id] = t
        return t

    def get(self, type_id: int) -> Optional[T.Type]:
        """``btf[type_id]`` or None when the id is out of range."""
        if not (0 <= type_id <= self.last_id):
            return None
        return self[type_id]

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[T.Type]:
        for type_id in range(self.start_id, self.last_id + 1):
            yield self[type_id]

    def __contains__(self, type_id: object) -> bool:
        return isinstance(type_id, int) and 0 <= type_id <= self.last_id

    def all_types(self) -> Iterator[T.Type]:
        """Every type including the base BTF's (without void)."""
        if self.base is not None:
            yield from self.base.all_types()
        yield from self

    def __repr__(self) -> str:
        what = self.name or self.source or "BTF"
        return f"<BTF {what}: types [{self.start_id}..{self.last_id}], {self.byteorder}-endian>"

    def _decode(self, type_id: int) -> T.Type:
        word = self._offset_of(type_id)
        pos = self._types_pos + 4 * word
        e = self._e
        if pos + 12 > self._types_end:
            raise BTFError(f"BTF type [{type_id}] at offset {pos}: truncated header")
        name_off, info, size_or_type = struct.unpack_from(e + "III", self._data, pos)
        kind_no = (info >> 24) & 0x1F
        if kind_no == 0 or kind_no > MAX_KIND:
            raise BTFError(f"BTF type [{type_id}] at offset {pos + 4}: unknown kind {kind_no}")
        kind = Kind(kind_no)
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        end = pos + 4 * record_words(info)
        nxt = type_id + 1
        limit = self._types_end if nxt > self.last_id else self._types_pos + 4 * self._offset_of(nxt)
        if end > limit:
            raise BTFError(f"BTF type [{type_id}] at offset {pos}: record of {end - pos} bytes runs past "
                           f"the next record or the type section's end at offset {limit}")
        name = self.string_at(name_off) if name_off else ""
        extra = struct.unpack_from(f"{e}{(end - pos) // 4 - 3}I", self._data, pos + 12)
        btf = self
        if kind == Kind.INT:
            enc = extra[0]
            return T.Int(btf, type_id, name, size_or_type, (enc >> 24) & 0xF, (enc >> 16) & 0xFF, enc & 0xFF)
        if kind == Kind.PTR:
            return T.Pointer(btf, type_id, name, size_or_type)
        if kind == Kind.ARRAY:
            return T.Array(btf, type_id, name, extra[0], extra[1], extra[2])
        if kind in (Kind.STRUCT, Kind.UNION):
            members = []
            string_at = self.string_at
            for i in range(0, 3 * vlen, 3):
                m_name, m_type, m_off = extra[i], extra[i + 1], extra[i + 2]
                if kflag:
                    bit_off, bf = m_off & 0xFFFFFF, m_off >> 24
                else:
                    bit_off, bf = m_off, 0
                members.append(T.Member(string_at(m_name) if m_name else "", m_type, bit_off, bf, btf))
            cls = T.Struct if kind == Kind.STRUCT else T.Union
            return cls(btf, type_id, name, size_or_type, members, kflag)
        if kind == Kind.ENUM:
            values = []
            for i in range(0, 2 * vlen, 2):
                v = extra[i + 1]
                if kflag and v & 0x80000000:
                    v -= 1 << 32
                values.append(T.EnumValue(self.string_at(extra[i]), v))
            return T.Enum(btf, type_id, name, size_or_type, values, kflag, Kind.ENUM)
        if kind == Kind.ENUM64:
            values = []
            for i in range(0, 3 * vlen, 3):
                v = extra[i + 1] | (extra[i + 2] << 32)
                if kflag and v & (1 << 63):
                    v -= 1 << 64
                values.append(T.EnumValue(self.string_at(extra[i]), v))
            return T.Enum(btf, type_id, name, size_or_type, values, kflag, Kind.ENUM64)
        if kind == Kind.FWD:
            return T.Fwd(btf, type_id, name, kflag)
        if kind == Kind.TYPEDEF:
            return T.Typedef(btf, type_id, name, size_or_type)
        if kind == Kind.VOLATILE:
            return T.Volatile(btf, type_id, name, size_or_type)
        if kind == Kind.CONST:
            return T.Const(btf, type_id, name, size_or_type)
        if kind == Kind.RESTRICT:
            return T.Restrict(btf, type_id, name, size_or_type)
        if kind == Kind.TYPE_TAG:
            return T.TypeTag(btf, type_id, name, size_or_type)
        if kind == Kind.FUNC:
            return T.Func(btf, type_id, name, size_or_type, vlen)
        if kind == Kind.FUNC_PROTO:
            params = [T.Param(self.string_at(extra[i]) if extra[i] else "", extra[i + 1], btf)
                      for i in range(0, 2 * vlen, 2)]
            return T.FuncProto(btf, type_id, name, size_or_type, params)
        if kind == Kind.VAR:
            return T.Var(btf, type_id, name, size_or_type, extra[0])
        if kind == Kind.DATASEC:
            secinfo = [T.VarSecinfo(extra[i], extra[i + 1], extra[i + 2], btf) for i in range(0, 3 * vlen, 3)]
            return T.Datasec(btf, type_id, name, size_or_type, secinfo)
        if kind == Kind.FLOAT:
            return T.Float(btf, type_id, name, size_or_type)
        if kind == Kind.DECL_TAG:
            idx = extra[0] - (1 << 32) if extra[0] & 0x80000000 else extra[0]
            return T.DeclTag(btf, type_id, name, size_or_type, idx)
        raise BTFError(f"BTF type [{type_id}] at offset {pos + 4}: unknown kind {kind_no}")  # pragma: no cover

    # -- lookup by name ---------------------------------------------------------------------------
    def _name_offsets(self, name: bytes) -> list[int]:
        """Offsets (in this BTF's string space) of strings whose essential name is ``name``."""
        out = []
        data, end = self._data, self._str_end
        pat = b"\0" + name
        plen = len(pat)
        i = data.find(pat, self._str_pos, end)
        while i >= 0:
            after = i + plen
            nxt = data[after:after + 1]
            if nxt == b"\0":
                out.append(i + 1 - self._str_pos + self.str_base)
            elif nxt == b"_" and data[after:after + 3] == b"___":
                off = i + 1 - self._str_pos + self.str_base
                if essential_name(self.string_at(off)).encode() == name:
                    out.append(off)
            i = data.find(pat, i + 1, end)
        return out

    def _own_ids_by_name(self, name: str) -> list[int]:
        raw = name.encode()
        idx = self._index
        if idx.keys_sorted is not None and idx.key_order is not None:
            # hash index (from the disk cache): candidates by key, confirmed by name
            key = np.uint64(name_key(raw))
            lo = int(np.searchsorted(idx.keys_sorted, key, "left"))
            hi = int(np.searchsorted(idx.keys_sorted, key, "right"))
            out = []
            for j in idx.key_order[lo:hi].tolist():
                tid = j + self.start_id
                if essential_name(self.name_of(tid)) == name:
                    out.append(tid)
            return sorted(out)
        offs = self._name_offsets(raw)
        b = self.base
        while b is not None:  # split types may name strings of the base
            offs.extend(b._name_offsets(raw))
            b = b.base
        ids: list[int] = []
        sorted_offs, order = self._index.name_offs_sorted, self._index.order
        for off in offs:
            lo = int(np.searchsorted(sorted_offs, off, "left"))
            hi = int(np.searchsorted(sorted_offs, off, "right"))
            ids.extend(int(x) + self.start_id for x in order[lo:hi])
        for j in self._index.odd.tolist():
            tid = j + self.start_id
            if essential_name(self.name_of(tid)) == name and tid not in ids:
                ids.append(tid)
        return sorted(ids)

    def find_all(self, name: str, kind: Optional[Kind] = None) -> list[T.Type]:
        """Every type whose essential name (``___flavour`` stripped) is ``name``, base BTF first."""
        if not name:
            return []
        out = self.base.find_all(name, kind) if self.base is not None else []
        for tid in self._own_ids_by_name(name):
            if kind is None or self.kind_of(tid) == kind:
                out.append(self[tid])
        return out

    def find(self, name: str, kind: Optional[Kind] = None) -> T.Type:
        """The type named ``name`` (of ``kind`` if given): an exact name match first, then a
        ``name___flavour`` one; the lowest id wins. Raises KeyError if there is none."""
        found = self.find_all(name, kind)
        if not found:
            what = f"{Kind(kind).name} " if kind is not None else ""
            raise KeyError(f"no {what}type named {name!r} in {self!r}")
        for t in found:
            if t.name == name:
                return t
        return found[0]

    def find_id(self, name: str, kind: Optional[Kind] = None) -> int:
        """Like :meth:`find` but returns the id (-1 if absent)."""
        try:
            return self.find(name, kind).id
        except KeyError:
            return -1

    # -- ABI --------------------------------------------------------------------------------------
    @property
    def pointer_size(self) -> int:
        """Pointer size in bytes: the size of ``long`` if the BTF has it, else the host's."""
        if self._ptr_size is None:
            if self.base is not None:
                self._ptr_size = self.base.pointer_size
            else:
                size = 0
                for n in ("long int", "long", "long unsigned int", "unsigned long", "long long unsigned int"):
                    for t in self.find_all(n, Kind.INT):
                        if t.name == n and t.size in (4, 8):
                            size = t.size
                            break
                    if size:
                        break
                self._ptr_size = size or struct.calcsize("P")
        return self._ptr_size

    @pointer_size.setter
    def pointer_size(self, value: int) -> None:
        self._ptr_size = value


def _find_vmlinux(sysfs: Path = Path(VMLINUX_PATH)) -> Path:
    """Where the running kernel's BTF is, following libbpf's search order."""
    candidates = [sysfs]
    release = os.uname().release
    candidates += [Path(p.replace("{}", release)) for p in (
        "/boot/vmlinux-{}", "/lib/modules/{}/vmlinux-{}", "/lib/modules/{}/build/vmlinux",
        "/usr/lib/modules/{}/kernel/vmlinux", "/usr/lib/debug/boot/vmlinux-{}",
        "/usr/lib/debug/boot/vmlinux-{}.debug", "/usr/lib/debug/lib/modules/{}/vmlinux")]
    for path in candidates:
        if path.exists():
            return path
    raise BTFError(f"no BTF for the running kernel: {VMLINUX_PATH} is missing "
                   "(kernel built without CONFIG_DEBUG_INFO_BTF?); pass a BTF file, e.g. from BTFHub")

