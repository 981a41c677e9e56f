"""A flat, numpy-free view of BTF type records for the C dumper.

The C dumper visits tens of thousands of types and reads a few words of each, many times over.
Going through :class:`corebpf.btf.BTF` objects would allocate one Python object per type and per
member; instead :class:`RawTypes` keeps the type section as one ``array('I')`` of 32-bit words
(native byte order) plus the word offset and kind of every type id, and decodes names on demand.

This module imports only the standard library and :mod:`corebpf.errors`, so the ``corebpf btf
dump`` command can use it without loading numpy (which would double the command's peak RSS).
Split BTF (kernel modules) is handled by concatenating the base's words and strings: ids and
string offsets of split BTF continue those of its base, so one flat table serves both.
"""

from __future__ import annotations

import mmap
import struct
import sys
from array import array
from bisect import bisect_left
from functools import lru_cache
from itertools import compress
from typing import Optional

from corebpf.errors import BTFError

__all__ = [
    "RawTypes", "INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF", "VOLATILE", "CONST",
    "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC", "FLOAT", "DECL_TAG", "TYPE_TAG", "ENUM64",
    "KIND_NAMES", "kind_mask",
]

# BTF_KIND_* (kept as plain ints: this module must not import corebpf.btf, see the docstring)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC = 9, 10, 11, 12, 13, 14, 15
FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 16, 17, 18, 19
MAX_KIND = ENUM64

KIND_NAMES = ("UNKN", "INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF", "VOLATILE",
              "CONST", "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC", "FLOAT", "DECL_TAG",
              "TYPE_TAG", "ENUM64")

# words after the 3-word header: fixed, and per vlen entry
_FIXED = [3] * 32
_FIXED[0] = 1 << 40  # unknown kinds: see RawTypes.__init__
for _k in range(MAX_KIND + 1, 32):
    _FIXED[_k] = 1 << 40
_PER = [0] * 32
for _k, _n in ((INT, 1), (ARRAY, 3), (VAR, 1), (DECL_TAG, 1)):
    _FIXED[_k] += _n
for _k, _n in ((STRUCT, 3), (UNION, 3), (ENUM, 2), (FUNC_PROTO, 2), (DATASEC, 3), (ENUM64, 3)):
    _PER[_k] = _n
_HEADER = 24


@lru_cache(maxsize=None)
def kind_mask(*kinds: int) -> bytes:
    """A ``bytes.translate`` table mapping each of ``kinds`` to 1 and every other byte to 0: applied
    to :attr:`RawTypes.kinds` it gives a selector of the ids of those kinds (for ``itertools.compress``)."""
    return bytes(1 if k in kinds else 0 for k in range(256))


def _parse(data: bytes, what: str) -> tuple[bytes, int, int, int, int]:
    """(bytes holding the type section in native order, its start and end there, string section
    start and end in ``data``) of a raw BTF blob.

    The type section is ``data`` itself when the blob is in this machine's byte order (no copy).
    """
    if len(data) < _HEADER:
        raise BTFError(f"{what}: BTF truncated at offset {len(data)}: a header needs {_HEADER} bytes")
    magic = struct.unpack_from("<H", data, 0)[0]
    if magic == 0xEB9F:
        e = "<"
    elif magic == 0x9FEB:
        e = ">"
    else:
        raise BTFError(f"{what}: not BTF at offset 0: magic {magic:#06x}, expected 0xeb9f")
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(e + "IIIII", data, 4)
    tpos, spos = hdr_len + type_off, hdr_len + str_off
    if type_len % 4 or tpos % 4 or tpos + type_len > len(data) or spos + str_len > len(data):
        raise BTFError(f"{what}: BTF at offset 8: type section [{tpos}, {tpos + type_len}) or string "
                       f"section [{spos}, {spos + str_len}) is misaligned or runs past the {len(data)} bytes")
    if str_len and data[spos + str_len - 1] != 0:
        raise BTFError(f"{what}: BTF string section at offset {spos + str_len - 1}: not NUL-terminated")
    if (e == "<") == (sys.byteorder == "little"):
        return data, tpos, tpos + type_len, spos, spos + str_len
    words = array("I")
    words.frombytes(data[tpos:tpos + type_len])
    words.byteswap()
    return words.tobytes(), 0, type_len, spos, spos + str_len


class RawTypes:
    """Every type record of a BTF (and of its base BTF for split BTF) as flat arrays.

    Attributes:
        words: the type sections (base first) as native-order 32-bit words.
        offs: ``offs[id]`` is the word offset of type ``id`` in ``words`` (0 for void).
        kinds: ``kinds[id]`` is the BTF kind number of type ``id`` (0 for void).
        start_id: first id this BTF defines (1, or the base's last id + 1 for split BTF).
        last_id: last type id.
        ptr_size: pointer size in bytes (8 unless the BTF's ``long`` says 4).
    """

    __slots__ = ("words", "offs", "kinds", "start_id", "last_id", "ptr_size", "base", "_sbuf",
                 "_spos", "_send", "_tbuf", "_tpos", "_tend", "blobs")

    def __init__(self, data: bytes, base: Optional["RawTypes"] = None, *, what: str = "BTF") -> None:
        # a read-only mapping (the kernel's /sys/kernel/btf files, see corebpf.cli.btf) is used as is
        data = bytes(data) if not isinstance(data, (bytes, mmap.mmap)) else data
        tbuf, tpos, tend, spos, send = _parse(data, what)
        self.base = base
        #: the raw BTF blobs this table was built from, base first
        self.blobs: tuple[bytes, ...] = (base.blobs if base is not None else ()) + (data,)
        if base is None:
            self._tbuf, self._tpos, self._tend = tbuf, tpos, tend
            self._sbuf, self._spos, self._send = data, spos, send
            offs, kinds = array("I", [0]), bytearray(1)
            first = 0
        else:
            # split BTF continues the base's ids and string offsets: concatenate both
            self._tbuf = base._tbuf[base._tpos:base._tend] + tbuf[tpos:tend]
            self._tpos, self._tend = 0, len(self._tbuf)
            first = len(base.words)
            self._sbuf = base._sbuf[base._spos:base._send] + data[spos:send]
            self._spos, self._send = 0, len(self._sbuf)
            offs, kinds = array("I", base.offs), bytearray(base.kinds)
        words = memoryview(self._tbuf)[self._tpos:self._tend].cast("I")
        self.start_id = len(offs)
        n = len(words)
        pos = first
        fixed, per = _FIXED, _PER
        offs_append, kinds_append = offs.append, kinds.append
        # invalid kinds (0, > MAX_KIND) get an impossible length, which ends the loop; checked below
        try:
            while pos < n:
                info = words[pos + 1]
                kind = info >> 24 & 0x1F
                offs_append(pos)
                kinds_append(kind)
                pos += fixed[kind] + (info & 0xFFFF) * per[kind]
        except IndexError:
            pos = n + 1
        bad = kinds.find(0, self.start_id)
        if bad < 0 and max(kinds[self.start_id:], default=1) > MAX_KIND:
            bad = next(i for i in range(self.start_id, len(kinds)) if kinds[i] > MAX_KIND)
        if bad >= 0:
            raise BTFError(f"{what}: BTF type [{bad}] at type word {offs[bad] - first}: unknown kind {kinds[bad]}")
        if pos != n:
            raise BTFError(f"{what}: BTF truncated: the last type record runs past the type section's end")
        self.words = words
        self.offs = offs
        self.kinds = kinds
        self.last_id = len(offs) - 1
        self.ptr_size = base.ptr_size if base is not None else self._guess_ptr_size()

    # -- access -----------------------------------------------------------------------------------
    def string(self, offset: int) -> str:
        """The NUL-terminated string at ``offset`` of the (concatenated) string section.

        Not cached: a dump decodes ~60k member names, mostly once, and a cache of them would be
        the largest thing in the dumper's memory.
        """
        pos = self._spos + offset
        end = self._sbuf.find(b"\0", pos, self._send)
        if end < 0:
            raise BTFError(f"BTF string offset {offset} is past the end of the string section")
        return self._sbuf[pos:end].decode("utf-8", "replace")

    def name(self, type_id: int) -> str:
        """Name of type ``type_id`` ('' for anonymous types and void)."""
        if type_id == 0:
            return ""
        off = self.words[self.offs[type_id]]
        return self.string(off) if off else ""

    def vlen(self, type_id: int) -> int:
        """Number of members/values/parameters/variables of ``type_id``."""
        return self.words[self.offs[type_id] + 1] & 0xFFFF

    def kflag(self, type_id: int) -> bool:
        """The kind_flag bit of ``type_id``."""
        return bool(self.words[self.offs[type_id] + 1] >> 31)

    def size_or_type(self, type_id: int) -> int:
        """The third header word: a size (INT, STRUCT, ENUM...) or a referenced type id."""
        return self.words[self.offs[type_id] + 2]

    def ids_named(self, *names: str) -> dict[str, list[int]]:
        """Ids of the types called exactly each of ``names``, sorted.

        Both searches run in C: the name in the string section gives its offset, and that offset
        as a 32-bit word in the type section gives candidate records (member names and other
        words can match too: only hits on a record's first word are kept).
        """
        buf, spos, send = self._sbuf, self._spos, self._send
        found: dict[str, list[int]] = {}
        for name in names:
            ids: list[int] = []
            pat = b"\0" + name.encode() + b"\0"
            i = buf.find(pat, spos, send)
            while i >= 0:
                ids.extend(self._records_named_at(i + 1 - spos))
                i = buf.find(pat, i + 1, send)
            if name and buf[spos:spos + len(pat) - 1] == pat[1:]:  # the very first string
                ids.extend(self._records_named_at(0))
            found[name] = sorted(set(ids))
        return found

    def _records_named_at(self, name_off: int) -> list[int]:
        """Ids of the records whose name_off word is ``name_off``."""
        tbuf, tpos, tend, offs = self._tbuf, self._tpos, self._tend, self.offs
        pat = name_off.to_bytes(4, sys.byteorder)
        out = []
        i = tbuf.find(pat, tpos, tend)
        while i >= 0:
            rel = i - tpos
            if rel % 4 == 0:
                word = rel // 4
                j = bisect_left(offs, word, 1)
                if j < len(offs) and offs[j] == word:
                    out.append(j)
            i = tbuf.find(pat, i + 1, tend)
        return out

    def ids_of_kind(self, kind: int) -> list[int]:
        """Every id of ``kind``, ascending."""
        kinds = self.kinds
        if kind <= 0 or kind > 255:
            return []  # void (id 0) is no type of the table
        if kinds.count(kind) * 8 > len(kinds):
            # a common kind (FUNC, FUNC_PROTO, PTR): one C pass over the kind table beats a
            # search per id (each costs about a Python loop iteration)
            return list(compress(range(len(kinds)), kinds.translate(kind_mask(kind))))
        out = []
        i = kinds.find(kind, 1)
        while i >= 0:
            out.append(i)
            i = kinds.find(kind, i + 1)
        return out

    def ids_by_kind(self) -> list[array]:
        """``[ids of kind 0, ids of kind 1, ...]`` (32 kinds), for passes over most kinds."""
        by_kind = [array("I") for _ in range(32)]
        appends = [a.append for a in by_kind]
        for tid, k in enumerate(self.kinds):
            appends[k](tid)
        del by_kind[0][:1]  # void
        return by_kind

    def _guess_ptr_size(self) -> int:
        """The size of ``long`` (what libbpf calls the BTF's pointer size), 8 if absent."""
        for tid in self.ids_of_kind(INT):
            if self.name(tid) in ("long int", "long unsigned int", "long", "unsigned long") \
                    and self.size_or_type(tid) in (4, 8):
                return self.size_or_type(tid)
        return 8

    def __len__(self) -> int:
        return self.last_id
