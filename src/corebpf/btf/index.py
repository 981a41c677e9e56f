"""One pass over the BTF type section: where each type starts, and a name index.

A BTF type record is ``name_off, info, size_or_type`` plus kind-specific words; its length depends
only on the kind and ``vlen`` found in ``info``. We compute, with numpy, where the next record
would start if a record started at each word position, compose that map with itself a few times,
and follow the composed chain from word 0 in Python (one step per 8 records); the records in
between are then filled in with vectorised lookups. The name index is the types' ``name_off``
sorted (a permutation array), so a lookup by name is a substring search in the string table plus
a binary search, and nothing is decoded or hashed per type at open time. The disk cache adds a
hash index of essential names (:func:`add_name_keys`) so cached opens skip the substring search.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import BTFError
from .types import Kind

__all__ = ["TypeIndex", "build_index", "record_words", "MAX_KIND", "name_key", "name_keys", "add_name_keys"]

MAX_KIND = max(Kind)

# words after the 3-word common header, per kind: (fixed extra, per vlen entry)
_EXTRA = {Kind.INT: 1, Kind.ARRAY: 3, Kind.VAR: 1, Kind.DECL_TAG: 1}
_PER_VLEN = {Kind.STRUCT: 3, Kind.UNION: 3, Kind.ENUM: 2, Kind.FUNC_PROTO: 2, Kind.DATASEC: 3, Kind.ENUM64: 3}

# tables indexed by the top byte of ``info`` (kind in bits 24-28, kind_flag in bit 31)
_FIXED_BY_BYTE = np.array([3 + _EXTRA.get(b & 0x1F, 0) for b in range(256)], dtype=np.int64)
_PER_BY_BYTE = np.array([_PER_VLEN.get(b & 0x1F, 0) for b in range(256)], dtype=np.int64)
_INTP = np.dtype(np.intp).itemsize
# records skipped per Python loop step when scanning is 2**_LEVELS
_LEVELS = 3


def record_words(info: int) -> int:
    """Length in 32-bit words of the type record whose ``info`` word is given."""
    top = (info >> 24) & 0xFF
    return int(_FIXED_BY_BYTE[top]) + (info & 0xFFFF) * int(_PER_BY_BYTE[top])


@dataclass
class TypeIndex:
    """Where the types of one BTF start and how to find them by name.

    Attributes:
        offsets: uint32, word offset of type ``start_id + i`` in the type section.
        name_offs_sorted: uint32, the types' ``name_off`` values, sorted.
        order: uint32, ``order[j]`` is the index (id - start_id) of the type with ``name_offs_sorted[j]``.
        odd: indexes of named types whose name_off points into the middle of a string (rare;
            looked at one by one in lookups).
        keys_sorted, key_order: optional hash index, :func:`name_key` of each named type's essential
            name, sorted, and the type indexes in that order. Built when the index is written to
            the disk cache, so a cached open finds names without scanning the string table.
    """

    offsets: np.ndarray
    name_offs_sorted: np.ndarray
    order: np.ndarray
    odd: np.ndarray
    keys_sorted: Optional[np.ndarray] = None
    key_order: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.offsets)


def scan_offsets(words: np.ndarray, types_pos: int) -> np.ndarray:
    """Word offsets of every type record in ``words`` (the type section as uint32 of the BTF's byte order).

    Raises :class:`BTFError` naming the byte offset (from the start of the BTF) of the first bad record.
    """
    nw = len(words)
    if nw == 0:
        return np.zeros(0, dtype=np.uint32)
    if nw < 3:
        raise BTFError(f"BTF truncated: type record at offset {types_pos} needs at least 12 bytes, "
                       f"{4 * nw} left in the type section")
    # nxt[p]: where the next record would start if one started at word p (clipped to nw; nxt[nw] = nw).
    # The record length comes from the kind (top byte of the info word at p + 1, low 5 bits) and
    # vlen (its low 16 bits); kinds are compared as bytes, which is cheaper than a table gather.
    little = words.dtype.byteorder == "<" or (words.dtype.byteorder == "=" and sys.byteorder == "little")
    raw = words.view(np.uint8)
    kind = (raw[7::4] if little else raw[4::4]) & np.uint8(0x1F)
    vlen = words.view("<u2")[2::2] if little else words.view(">u2")[3::2]
    fixed = (kind == Kind.INT).view(np.uint8) + (kind == Kind.VAR).view(np.uint8) + \
        (kind == Kind.DECL_TAG).view(np.uint8) + np.uint8(3) * (kind == Kind.ARRAY).view(np.uint8)
    per = np.uint8(3) * ((kind == Kind.STRUCT) | (kind == Kind.UNION) | (kind == Kind.DATASEC)
                         | (kind == Kind.ENUM64)).view(np.uint8) + \
        np.uint8(2) * ((kind == Kind.ENUM) | (kind == Kind.FUNC_PROTO)).view(np.uint8)
    nxt = np.empty(nw + 1, dtype=np.intp)
    body = nxt[:nw - 1]
    np.multiply(vlen, per, out=body, dtype=np.intp, casting="unsafe")  # vlen * 3 overflows 16 bits
    body += fixed
    body += np.arange(3, nw + 2, dtype=np.intp)
    nxt[nw - 1] = nw + 2
    np.minimum(nxt, nw, out=nxt)
    nxt[nw] = nw
    # Follow the chain from word 0 in Python, but 2**_LEVELS records per step (jump tables built by
    # composing nxt with itself), then fill in the records in between with vectorised lookups.
    # (intp throughout: numpy converts any other index type on every gather.)
    jumps = [nxt]
    for _ in range(_LEVELS):
        j = jumps[-1]
        jumps.append(np.take(j, j))
    far = jumps[-1].tolist() if nw < 4096 else memoryview(jumps[-1]).cast("B").cast("q" if _INTP == 8 else "i")
    starts = []
    append = starts.append
    i = 0
    while i < nw:
        append(i)
        i = far[i]
    pos = np.array(starts, dtype=np.intp)
    for j in reversed(jumps[:-1]):
        pos = np.stack([pos, np.take(j, pos)], axis=1).ravel()
    offsets = pos[:int(np.searchsorted(pos, nw))].astype(np.uint32)
    last = int(offsets[-1])
    need = record_words(int(words[last + 1])) if last + 1 < nw else 3
    if last + need != nw:
        raise BTFError(f"BTF truncated: type record at offset {types_pos + 4 * last} "
                       f"needs {need * 4} bytes, {4 * (nw - last)} left in the type section")
    kinds = (words[offsets.astype(np.intp) + 1] >> 24) & 0x1F
    bad = np.flatnonzero((kinds == 0) | (kinds > MAX_KIND))
    if len(bad):
        j = int(bad[0])
        raise BTFError(f"BTF type [{j + 1}] at offset {types_pos + 4 * int(offsets[j]) + 4}: "
                       f"unknown kind {int(kinds[j])}")
    return offsets


def build_index(words: np.ndarray, types_pos: int, strings: np.ndarray, str_base: int,
                base_strings: np.ndarray | None = None) -> TypeIndex:
    """Scan the types and build the name index.

    ``strings`` is this BTF's own string section (uint8); ``str_base`` the size of the base BTF's
    string section for split BTF (name offsets below it point into ``base_strings``).
    """
    offsets = scan_offsets(words, types_pos)
    name_offs = words[offsets.astype(np.intp)] if len(offsets) else np.zeros(0, dtype=np.uint32)
    name_offs = np.ascontiguousarray(name_offs, dtype=np.uint32)
    order = np.argsort(name_offs, kind="stable").astype(np.uint32)
    sorted_offs = name_offs[order]
    # names that do not start right after a NUL cannot be found by searching "\0name\0"
    own = (name_offs > str_base) & (name_offs - str_base < len(strings))
    rel = name_offs[own].astype(np.intp) - str_base
    odd_local = np.flatnonzero(strings[rel - 1] != 0) if len(rel) else np.zeros(0, dtype=np.intp)
    odd = np.flatnonzero(own)[odd_local]
    if base_strings is not None and len(base_strings):
        in_base = (name_offs > 0) & (name_offs < len(base_strings))
        b = name_offs[in_base].astype(np.intp)
        odd = np.union1d(odd, np.flatnonzero(in_base)[np.flatnonzero(base_strings[b - 1] != 0)])
    odd = odd.astype(np.uint32)
    return TypeIndex(offsets=offsets, name_offs_sorted=sorted_offs, order=order, odd=odd)


_M1 = 0x9E3779B97F4A7C15
_M2 = 0xC2B2AE3D27D4EB4F
_M3 = 0x165667B19E3779F9
_MASK64 = (1 << 64) - 1


def name_key(essential: bytes) -> int:
    """64-bit lookup key of an essential name: its length, first and last 8 bytes, mixed.

    Equal names have equal keys; different names rarely do (candidates are always checked by name).
    """
    n = len(essential)
    first = int.from_bytes(essential[:8].ljust(8, b"\0"), "little")
    last = int.from_bytes(essential[-8:], "little") if n >= 8 else first
    k = ((first * _M1) ^ (last * _M2) ^ (n * _M3)) & _MASK64
    return (k ^ (k >> 29)) & _MASK64


def name_keys(strings: np.ndarray, name_offs: np.ndarray) -> np.ndarray:
    """:func:`name_key` of the essential name at each offset of ``strings`` (vectorised; uint64)."""
    if len(name_offs) == 0:
        return np.zeros(0, dtype=np.uint64)
    size = len(strings)
    padded = np.concatenate([strings, np.zeros(8, dtype=np.uint8)])
    s = name_offs.astype(np.int64)
    zeros = np.flatnonzero(strings == 0)
    e = zeros[np.minimum(np.searchsorted(zeros, s), len(zeros) - 1)].astype(np.int64)
    # the essential name ends at the last "X___Y" separator (X, Y not '_') inside the name
    u = strings == 95
    sep = np.flatnonzero(u[:-2] & u[1:-1] & u[2:]) if size >= 3 else np.zeros(0, dtype=np.int64)
    sep = sep[(sep >= 1) & (sep + 3 < size)]
    sep = sep[(strings[sep - 1] != 95) & (strings[sep + 3] != 95)]
    end = e
    if len(sep):
        j = np.searchsorted(sep, e - 4, "right") - 1
        cand = np.where(j >= 0, sep[np.maximum(j, 0)], -1)
        end = np.where(cand >= s + 1, cand, e)
    n = end - s
    windows = np.lib.stride_tricks.sliding_window_view(padded, 8)
    keep = np.arange(8)[None, :] < n[:, None]
    first = (windows[s] * keep).astype(np.uint8).view("<u8").ravel()
    last_start = np.maximum(end - 8, s)
    last = np.where(n >= 8, (windows[last_start]).copy().view("<u8").ravel(), first)
    with np.errstate(over="ignore"):
        k = (first * np.uint64(_M1)) ^ (last * np.uint64(_M2)) ^ (n.astype(np.uint64) * np.uint64(_M3))
        return k ^ (k >> np.uint64(29))


def add_name_keys(index: TypeIndex, words: np.ndarray, all_strings: np.ndarray) -> None:
    """Fill ``index.keys_sorted``/``key_order`` (``all_strings``: base and own strings, in offset order)."""
    offs = index.offsets.astype(np.intp)
    name_offs = words[offs].astype(np.int64) if len(offs) else np.zeros(0, dtype=np.int64)
    named = np.flatnonzero((name_offs > 0) & (name_offs < len(all_strings)))
    keys = name_keys(all_strings, name_offs[named])
    order = np.argsort(keys, kind="stable")
    # key_order first: readers use the hash index only once keys_sorted is set too
    index.key_order = np.ascontiguousarray(named[order].astype(np.uint32))
    index.keys_sorted = np.ascontiguousarray(keys[order])
