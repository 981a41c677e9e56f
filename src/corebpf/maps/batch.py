"""Batch operations: many elements per ``bpf()`` call, with a per-element fallback.

Keys and values travel as contiguous fixed-size records: ``bytes``, ``bytearray``, ``memoryview`` or a
numpy array whose byte size is a multiple of the record size. Lookups answer two numpy ``uint8`` arrays:
keys of shape ``(n, key_size)`` and values of shape ``(n, value_size)`` (per-CPU maps:
``(n, cpus, round_up(value_size, 8))``); ``.view("<u4")`` and friends turn them into numbers.

Kernels before 5.6, and map types without batch support, answer ``EINVAL`` or ``ENOTSUPP`` before
processing anything; then the same work is done one element at a time, with identical results.
"""

from __future__ import annotations

import ctypes
import errno
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .._sys import _generated as g
from .._sys._generated import Cmd
from .._sys.ops import addr
from .._sys.syscall import bpf_raw, make_error
from ..errors import ENOTSUPP

if TYPE_CHECKING:  # pragma: no cover
    from .map import Map

_FALLBACK_ERRNOS = (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP)
_INITIAL_RECORDS = 1 << 16


class _Raw:
    """Address and byte length of a caller's record buffer (kept alive while in use)."""

    __slots__ = ("obj", "address", "nbytes")

    def __init__(self, data: Any) -> None:
        if isinstance(data, np.ndarray):
            arr = np.ascontiguousarray(data)
            self.obj: Any = arr
            self.address = arr.ctypes.data
            self.nbytes = arr.nbytes
            return
        if isinstance(data, memoryview) and (data.readonly or not data.c_contiguous):
            data = bytes(data)
        if isinstance(data, (bytes, bytearray, memoryview, ctypes.Array)):
            self.obj = data
            self.address = addr(data)
            self.nbytes = len(memoryview(data).cast("B")) if not isinstance(data, bytes) else len(data)
            return
        raise TypeError(f"batch records must be bytes, bytearray, memoryview or a numpy array, "
                        f"not {type(data).__name__}")


def _count(raw: _Raw, size: int, what: str) -> int:
    if size == 0:
        raise ValueError(f"batch operations need a map with {what}s")
    if raw.nbytes % size:
        raise ValueError(f"{what}s must be a whole number of {size}-byte records, got {raw.nbytes} bytes")
    return raw.nbytes // size


def _call(cmd: Cmd, fd: int, *, in_batch: int = 0, out_batch: int = 0, keys: int = 0, values: int = 0,
          count: int = 0, elem_flags: int = 0) -> tuple[int, int]:
    """One batch command; returns (0 or -errno, elements processed)."""
    attr = g.MapBatchAttr(in_batch=in_batch, out_batch=out_batch, keys=keys, values=values, count=count,
                          map_fd=fd, elem_flags=elem_flags, flags=0)
    while True:
        ret = bpf_raw(cmd, attr)
        if ret != -errno.EINTR:
            return min(ret, 0), attr.count


def update_batch(m: "Map", keys: Any, values: Any, flags: int = 0, *, fallback: bool = False) -> int:
    """Write ``keys[i] -> values[i]`` for every record; returns how many were written."""
    kraw, vraw = _Raw(keys), _Raw(values)
    n = _count(kraw, m.key_size, "key")
    vsize = m.user_value_size
    if _count(vraw, vsize, "value") != n:
        raise ValueError(f"{n} keys but {vraw.nbytes // vsize} values of {vsize} bytes")
    if n == 0:
        return 0
    if not fallback:
        ret, done = _call(Cmd.MAP_UPDATE_BATCH, m.fileno(), keys=kraw.address, values=vraw.address, count=n,
                          elem_flags=flags)
        if ret == 0:
            return done
        if not (done == 0 and -ret in _FALLBACK_ERRNOS):
            raise make_error(-ret, Cmd.MAP_UPDATE_BATCH, detail=f"after {done} of {n} elements")
    kmv = (ctypes.c_char * kraw.nbytes).from_address(kraw.address)
    vmv = (ctypes.c_char * vraw.nbytes).from_address(vraw.address)
    ks = m.key_size
    for i in range(n):
        m._update_raw(kmv[i * ks:(i + 1) * ks], vmv[i * vsize:(i + 1) * vsize], flags)
    return n


def delete_batch(m: "Map", keys: Any, *, fallback: bool = False) -> int:
    """Delete every key record; a missing key stops the batch with ``BPFNotFoundError``."""
    kraw = _Raw(keys)
    n = _count(kraw, m.key_size, "key")
    if n == 0:
        return 0
    if not fallback:
        ret, done = _call(Cmd.MAP_DELETE_BATCH, m.fileno(), keys=kraw.address, count=n)
        if ret == 0:
            return done
        if not (done == 0 and -ret in _FALLBACK_ERRNOS):
            raise make_error(-ret, Cmd.MAP_DELETE_BATCH, detail=f"after {done} of {n} elements")
    kmv = (ctypes.c_char * kraw.nbytes).from_address(kraw.address)
    ks = m.key_size
    for i in range(n):
        if not m._delete_raw(kmv[i * ks:(i + 1) * ks]):
            raise make_error(errno.ENOENT, Cmd.MAP_DELETE_BATCH, detail=f"after {i} of {n} elements")
    return n


def _value_shape(m: "Map", n: int) -> tuple[int, ...]:
    if m.percpu:
        from .percpu import possible_cpus, slot_size

        return (n, possible_cpus(), slot_size(m.value_size))
    return (n, m.user_value_size)


def lookup_batch(m: "Map", *, delete: bool = False, fallback: bool = False,
                 chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every element of the map as (keys, values) arrays; with ``delete``, also remove them.

    ``chunk`` caps the elements per call (default: as many as the map can hold, i.e. one call).
    """
    cmd = Cmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else Cmd.MAP_LOOKUP_BATCH
    ks, vs = m.key_size, m.user_value_size
    # Start with room for the whole map, within reason: a huge, mostly empty hash grows the buffers instead.
    cap = min(max(m.max_entries, 1), _INITIAL_RECORDS)
    if not fallback:
        result = _kernel_lookup(m, cmd, ks, vs, cap, chunk)
        if result is not None:
            return result
    return _fallback_lookup(m, delete)


def _kernel_lookup(m: "Map", cmd: Cmd, ks: int, vs: int, cap: int,
                   chunk: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    keys = np.empty((cap, ks), dtype=np.uint8)
    values = np.empty((cap, vs), dtype=np.uint8)
    # The batch cursor is a u32 bucket for hashes and a key for arrays: room for either.
    tok_size = max(ks, 8)
    tok_in, tok_out = bytearray(tok_size), bytearray(tok_size)
    in_addr, out_addr = addr(tok_in), addr(tok_out)
    total, first = 0, True
    fd = m.fileno()
    while True:
        room = cap - total
        want = room if chunk is None else min(room, chunk)
        if want == 0:
            # The map grew while we read (a hash refilled concurrently): make room and go on.
            keys, values, cap = _grow(keys, values, cap)
            continue
        ret, got = _call(cmd, fd, in_batch=0 if first else in_addr, out_batch=out_addr,
                         keys=keys.ctypes.data + total * ks, values=values.ctypes.data + total * vs, count=want)
        total += got
        if ret == -errno.ENOENT:
            break
        if ret == -errno.ENOSPC and got == 0:
            # One hash bucket holds more elements than the room left: retry the same cursor with more room.
            if chunk is not None:
                chunk *= 2
            if want == room:
                keys, values, cap = _grow(keys, values, cap)
            continue
        if ret < 0:
            if first and total == 0 and -ret in _FALLBACK_ERRNOS:
                return None
            raise make_error(-ret, cmd, detail=f"after {total} elements")
        first = False
        tok_in[:] = tok_out
    return keys[:total], values[:total].reshape(_value_shape(m, total))


def _grow(keys: np.ndarray, values: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray, int]:
    new_cap = cap * 2
    k2 = np.empty((new_cap, keys.shape[1]), dtype=np.uint8)
    v2 = np.empty((new_cap, values.shape[1]), dtype=np.uint8)
    k2[:cap], v2[:cap] = keys, values
    return k2, v2, new_cap


def _fallback_lookup(m: "Map", delete: bool) -> tuple[np.ndarray, np.ndarray]:
    ks, vs = m.key_size, m.user_value_size
    key_list = list(m._iter_raw_keys())
    keys = np.empty((len(key_list), ks), dtype=np.uint8)
    values = np.empty((len(key_list), vs), dtype=np.uint8)
    vbuf = bytearray(vs)
    n = 0
    read: Callable[[bytes, bytearray], bool] = m._lookup_and_delete_raw if delete else m._lookup_raw
    for key in key_list:
        if not read(key, vbuf):
            continue  # deleted since we listed it
        keys[n] = np.frombuffer(key, dtype=np.uint8)
        values[n] = np.frombuffer(vbuf, dtype=np.uint8)
        n += 1
    return keys[:n], values[:n].reshape(_value_shape(m, n))


__all__ = ["update_batch", "delete_batch", "lookup_batch"]
