"""``corebpf.Map``: a kernel BPF map as a Python mutable mapping of bytes.

Keys and values are bytes of exactly the map's key and value sizes (ints are accepted for 4/8-byte
keys, in native byte order). Per-CPU maps read as a list with one value per possible CPU and accept
either such a list or one value for every CPU. Maps whose values are fds of other objects (program
arrays, map-in-map, sockmaps...) accept an int fd or any object with ``fileno()``; program arrays
and map-in-map read back the object's *id*, as the kernel reports it.
"""

from __future__ import annotations

import errno
import mmap
import os
import sys
from collections.abc import ItemsView, Iterator, MutableMapping, Sequence, ValuesView
from typing import Any, Optional, Union

from .._sys import ops
from .._sys._generated import Cmd, MapType
from .._sys.fd import FD
from .._sys.handle import Handle
from .._sys.syscall import bpf_raw, make_error
from .._sys import _generated as g
from ..errors import BPFError, BPFNotSupportedError, error_class
from . import batch as _batch
from . import percpu as _percpu
from .info import MapInfo, map_info
from .types import PAGE_SIZE, BPF_F_NO_PREALLOC, BPF_F_NUMA_NODE, Kind, UpdateFlags, check_create, parse_map_type, rules_for

Key = Union[bytes, bytearray, memoryview, int]
Value = Any
_MISSING: Any = object()


class Map(Handle, MutableMapping):  # type: ignore[type-arg]
    """A BPF map owned by this process (through an fd).

    Create one with :meth:`create`, or open an existing one with :meth:`from_id`, :meth:`from_pin`
    or :meth:`from_fd`. Use it as a context manager (or call :meth:`close`) to release the fd; the
    map itself lives on while pinned or used by a loaded program.
    """

    _KIND = "map"
    _NOUN = "map"

    def __init__(self, fd: FD, info: MapInfo) -> None:
        """Wrap an owned map fd (use the class methods instead of calling this)."""
        self._fd = fd
        self.type: MapType | int = info.type
        self.key_size: int = info.key_size
        self.value_size: int = info.value_size
        self.max_entries: int = info.max_entries
        self.flags: int = info.flags
        self.name: str = info.name
        self.id: int = info.id
        self._rules = rules_for(info.type) if isinstance(info.type, MapType) else rules_for(MapType.UNSPEC)
        self.percpu: bool = self._rules.percpu
        self.user_value_size: int = (_percpu.buffer_size(self.value_size) if self.percpu else self.value_size)
        """Bytes of one value in user-space buffers (all CPUs' slots for per-CPU maps)."""

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def create(cls, type: "MapType | int | str", key_size: int, value_size: int, max_entries: int,
               flags: int = 0, name: str = "", inner_map: "Map | int | None" = None,
               numa_node: Optional[int] = None, map_extra: int = 0, btf: Any = None,
               btf_key_type_id: int = 0, btf_value_type_id: int = 0, btf_vmlinux_value_type_id: int = 0,
               ifindex: int = 0) -> "Map":
        """Create a map of ``type`` (a :class:`MapType`, its number or name such as ``"percpu_hash"``).

        ``inner_map`` is the template for map-in-map types; ``btf`` (an fd or an object with ``fileno()``)
        with the type ids describes keys and values. Local-storage maps given no BTF get a minimal
        one describing opaque values. ``numa_node`` sets ``BPF_F_NUMA_NODE``. Raises :class:`ValueError`
        for a request the kernel would refuse, and :class:`~corebpf.errors.BPFError` with a hint when
        the kernel refuses it (e.g. it lacks this map type).
        """
        mtype = parse_map_type(type)
        rules = rules_for(mtype)
        if mtype == MapType.PERF_EVENT_ARRAY and max_entries == 0:
            max_entries = _percpu.possible_cpus()  # one slot per CPU, as libbpf does
        if rules.required_flags & BPF_F_NO_PREALLOC and rules.kind == Kind.STORAGE:
            flags |= BPF_F_NO_PREALLOC
        if numa_node is not None:
            flags |= BPF_F_NUMA_NODE
        check_create(mtype, key_size, value_size, max_entries, flags, inner_map is not None,
                     btf is not None or bool(btf_vmlinux_value_type_id))
        own_btf: FD | None = None
        if rules.needs_btf and btf is None:
            from .scalar_btf import KEY_TYPE_ID, VALUE_TYPE_ID, load_opaque_value_btf

            # Local storage needs BTF for its key and value; struct_ops needs some BTF object to
            # begin with, its value type coming from vmlinux. Opaque bytes satisfy both.
            own_btf = btf = load_opaque_value_btf(value_size)
            if rules.kind == Kind.STORAGE:
                btf_key_type_id, btf_value_type_id = KEY_TYPE_ID, VALUE_TYPE_ID
        try:
            fd = ops.map_create(mtype, key_size, value_size, max_entries, flags=flags, name=name,
                                inner_map_fd=_fileno(inner_map) if inner_map is not None else 0,
                                numa_node=numa_node or 0, ifindex=ifindex,
                                btf_fd=_fileno(btf) if btf is not None else 0, btf_key_type_id=btf_key_type_id,
                                btf_value_type_id=btf_value_type_id,
                                btf_vmlinux_value_type_id=btf_vmlinux_value_type_id, map_extra=map_extra)
        except BPFError as exc:
            raise _explain_create_error(exc, mtype, name) from None
        finally:
            if own_btf is not None:
                own_btf.close()  # the map holds its own reference to the BTF object
        return cls._from_owned_fd(fd)

    @classmethod
    def _from_owned_fd(cls, fd: FD) -> "Map":
        try:
            return cls(fd, map_info(fd.fileno()))
        except BaseException:
            fd.close()
            raise

    # ---- lifetime: fd, fileno, closed, close, pin and the context manager come from Handle --------

    def __repr__(self) -> str:
        tname = self.type.name.lower() if isinstance(self.type, MapType) else str(self.type)
        state = "closed" if self.closed else f"fd={self._fd.fileno()}"
        return (f"<Map {tname} id={self.id} name={self.name!r} key={self.key_size} value={self.value_size} "
                f"max_entries={self.max_entries} {state}>")

    __eq__ = object.__eq__  # identity, not Mapping's element-wise comparison
    __hash__ = object.__hash__  # type: ignore[assignment]

    # ---- facts -------------------------------------------------------------------------------

    @property
    def info(self) -> MapInfo:
        """Fresh :class:`MapInfo` from the kernel."""
        return map_info(self.fileno())

    @property
    def kind(self) -> Kind:
        """How user space talks to this map type (see :class:`~corebpf.maps.types.Kind`)."""
        return self._rules.kind

    def freeze(self) -> None:
        """Make the map read-only for user space (programs may still write unless BPF_F_RDONLY_PROG)."""
        ops.map_freeze(self.fileno())

    def mmap(self, length: Optional[int] = None, offset: int = 0, writable: bool = True) -> mmap.mmap:
        """Map the map's memory into this process (arrays created with ``BPF_F_MMAPABLE``, arenas,
        ring buffers). ``length`` defaults to the whole array or arena."""
        if length is None:
            if self.type == MapType.ARENA:
                length = self.max_entries * PAGE_SIZE
            elif self.kind == Kind.ARRAY and not self.percpu:
                length = -(-self.value_size * self.max_entries // PAGE_SIZE) * PAGE_SIZE
            else:
                raise TypeError("give the length to map for this map type")
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        try:
            return mmap.mmap(self.fileno(), length, flags=mmap.MAP_SHARED, prot=prot, offset=offset)
        except OSError as exc:
            err = exc.errno or errno.EINVAL
            raise error_class(err)(err, "mmap", "only BPF_F_MMAPABLE arrays, arenas and ring buffers can be "
                                   "mmapped, within their size; frozen maps only read-only") from None

    # ---- raw element operations (bytes in, filled buffers out) -------------------------------

    def _lookup_raw(self, key: "bytes | None", out: bytearray, flags: int = 0) -> bool:
        try:
            return ops.map_lookup_elem(self.fileno(), key, out, flags)
        except BPFNotSupportedError as exc:
            tname = self.type.name.lower() if isinstance(self.type, MapType) else str(self.type)
            raise BPFNotSupportedError(exc.errno, exc.command, f"{tname} maps cannot be read from user space; "
                                       "programs use them (writes and deletes work)", tname + " map") from None

    def _lookup_and_delete_raw(self, key: "bytes | None", out: bytearray) -> bool:
        ret = bpf_raw(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, _elem_attr(self.fileno(), key, out))
        if ret == -errno.ENOENT:
            return False
        if ret in (-errno.EINVAL, -errno.EOPNOTSUPP, -524) and key is not None:
            # Kernels before 5.14 pop only queues/stacks: do it in two steps.
            if not self._lookup_raw(key, out):
                return False
            return self._delete_raw(key)
        if ret < 0:
            raise make_error(-ret, Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
        return True

    def _update_raw(self, key: "bytes | None", value: bytes, flags: int = 0) -> None:
        ops.map_update_elem(self.fileno(), key, value, flags)

    def _delete_raw(self, key: bytes) -> bool:
        return ops.map_delete_elem(self.fileno(), key)

    def _iter_raw_keys(self) -> Iterator[bytes]:
        self._require_keys("iterate")
        if self.kind == Kind.CGROUP_STORAGE:
            yield from self._iter_cgroup_storage_keys()
            return
        cur: bytes | None = None
        nxt = bytearray(self.key_size)
        while ops.map_get_next_key(self.fileno(), cur, nxt):
            cur = bytes(nxt)
            yield cur

    def _iter_cgroup_storage_keys(self) -> Iterator[bytes]:
        # Kernels without 5828b9e5b272 ("bpf: fix end-of-list detection in cgroup_storage_get_next_key()",
        # 2026, backported to the stable series) never answer ENOENT after the last entry: they return
        # a bogus key read from the map's own list head (kernel pointer bytes, e.g. Debian 5.10.223).
        # A key the map cannot look up is therefore the end. This matches the fixed kernels: there too
        # get_next_key answers ENOENT for a key that is gone, so iteration ends at a vanished entry.
        cur: bytes | None = None
        nxt = bytearray(self.key_size)
        probe = bytearray(self.user_value_size)
        seen: set[bytes] = set()
        while ops.map_get_next_key(self.fileno(), cur, nxt):
            cur = bytes(nxt)
            if cur in seen or not self._lookup_raw(cur, probe):
                return
            seen.add(cur)
            yield cur

    # ---- conversions -------------------------------------------------------------------------

    def _require_keys(self, what: str) -> None:
        if self.kind in (Kind.QUEUE, Kind.BLOOM, Kind.MMAP) or self.key_size == 0:
            tname = self.type.name.lower() if isinstance(self.type, MapType) else str(self.type)
            how = {Kind.QUEUE: "use push()/pop()/peek()", Kind.BLOOM: "use push()/contains()",
                   Kind.MMAP: "it is read through mmap"}.get(self.kind, "it has no keys")
            raise TypeError(f"cannot {what} a {tname} map by key: {how}")

    def _key(self, key: Key) -> bytes:
        self._require_keys("index")
        if isinstance(key, int) and not isinstance(key, bool):
            if self.key_size not in (4, 8):
                raise TypeError(f"int keys need a 4- or 8-byte key, this map's keys are {self.key_size} bytes")
            try:
                return key.to_bytes(self.key_size, sys.byteorder, signed=key < 0)
            except OverflowError:
                raise ValueError(f"key {key} does not fit in {self.key_size} bytes") from None
        if hasattr(key, "fileno") and self.kind == Kind.STORAGE:
            return key.fileno().to_bytes(4, sys.byteorder)
        raw = _bytes(key, "key")
        if len(raw) != self.key_size:
            raise ValueError(f"key must be {self.key_size} bytes, got {len(raw)}")
        return raw

    def _value(self, value: Value) -> bytes:
        if self._rules.value_is_fd and (isinstance(value, int) or hasattr(value, "fileno")):
            fd = value if isinstance(value, int) else value.fileno()
            return int(fd).to_bytes(self.value_size, sys.byteorder)
        if self.percpu:
            if not isinstance(value, (bytes, bytearray, memoryview, Sequence)):
                raise TypeError(f"per-CPU value must be bytes or a list of bytes, not {type(value).__name__}")
            return bytes(_percpu.pack(value, self.value_size))
        raw = _bytes(value, "value")
        if len(raw) != self.value_size:
            raise ValueError(f"value must be {self.value_size} bytes, got {len(raw)}")
        return raw

    def _decode(self, buf: bytearray) -> Value:
        if self.percpu:
            return _percpu.unpack(buf, self.value_size)
        if self._rules.lookup_returns_id:
            return int.from_bytes(buf[:4], sys.byteorder)
        return bytes(buf)

    # ---- element API -------------------------------------------------------------------------

    def lookup(self, key: Key, flags: int = 0) -> Optional[Value]:
        """The value at ``key``, or None when absent (``flags``: e.g. ``UpdateFlags.LOCK``)."""
        buf = bytearray(self.user_value_size)
        if not self._lookup_raw(self._key(key), buf, flags):
            return None
        return self._decode(buf)

    def update(self, key: Any = _MISSING, value: Any = _MISSING, flags: int = UpdateFlags.ANY,  # type: ignore[override]
               **kwargs: Any) -> None:
        """``update(key, value, flags)`` writes one element (``UpdateFlags.NOEXIST``/``EXIST`` to
        create-only/replace-only). ``update(mapping_or_pairs)`` writes many, like ``dict.update``."""
        if value is _MISSING:
            other = () if key is _MISSING else key
            MutableMapping.update(self, other, **kwargs)
            return
        self._update_raw(self._key(key), self._value(value), int(flags))

    def delete(self, key: Key) -> bool:
        """Delete ``key``; False when it was not there."""
        return self._delete_raw(self._key(key))

    def lookup_and_delete(self, key: Key) -> Optional[Value]:
        """Read and delete ``key`` in one step (two steps on kernels before 5.14); None when absent."""
        buf = bytearray(self.user_value_size)
        if not self._lookup_and_delete_raw(self._key(key), buf):
            return None
        return self._decode(buf)

    def __getitem__(self, key: Key) -> Value:
        value = self.lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Key, value: Value) -> None:
        self._update_raw(self._key(key), self._value(value), UpdateFlags.ANY)

    def __delitem__(self, key: Key) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if self.kind == Kind.BLOOM:
            return self.contains(key)
        try:
            return self.lookup(key) is not None  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False

    def __iter__(self) -> Iterator[bytes]:
        """Keys in the kernel's order (``BPF_MAP_GET_NEXT_KEY``)."""
        return self._iter_raw_keys()

    def __len__(self) -> int:
        """Entries: ``max_entries`` for arrays (every index exists), a full key walk for hashes."""
        if self.kind in (Kind.ARRAY, Kind.FD_ARRAY):
            return self.max_entries
        return sum(1 for _ in self._iter_raw_keys())

    def items(self) -> "ItemsView[bytes, Value]":
        """(key, value) pairs; keys deleted while iterating (e.g. by a program) are skipped."""
        return _ItemsView(self)

    def values(self) -> "ValuesView[Value]":
        """Values; keys deleted while iterating are skipped."""
        return _ValuesView(self)

    def clear(self) -> None:
        """Delete every element (hash-like maps; array elements cannot be deleted)."""
        if self.type in (MapType.ARRAY, MapType.PERCPU_ARRAY):
            raise TypeError("array elements cannot be deleted; overwrite them instead")
        for key in list(self._iter_raw_keys()):
            self._delete_raw(key)

    def pop(self, key: Any = _MISSING, default: Any = _MISSING) -> Value:  # type: ignore[override]
        """Queue/stack: ``pop()`` removes and returns the next value. Other maps: ``pop(key[, default])``
        like a dict. Raises KeyError when there is nothing to pop and no default was given."""
        if self.kind == Kind.QUEUE:
            if key is not _MISSING and default is _MISSING:
                default = key  # pop(default) reads naturally for a queue
            buf = bytearray(self.value_size)
            if self._lookup_and_delete_raw(None, buf):
                return bytes(buf)
            if default is _MISSING:
                raise KeyError("pop from an empty queue/stack map")
            return default
        if key is _MISSING:
            raise TypeError("pop() needs a key for this map type")
        value = self.lookup_and_delete(key)
        if value is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return value

    # ---- queue, stack, bloom filter ----------------------------------------------------------

    def push(self, value: bytes, flags: int = UpdateFlags.ANY) -> None:
        """Queue/stack: append ``value`` (``BPF_EXIST`` overwrites the oldest when full).
        Bloom filter: add ``value``."""
        if self.kind not in (Kind.QUEUE, Kind.BLOOM):
            raise TypeError("push() is for queue, stack and bloom_filter maps")
        self._update_raw(None, self._value(value), int(flags))

    def peek(self) -> Optional[bytes]:
        """Queue/stack: the next value without removing it, or None when empty."""
        if self.kind != Kind.QUEUE:
            raise TypeError("peek() is for queue and stack maps")
        buf = bytearray(self.value_size)
        return bytes(buf) if self._lookup_raw(None, buf) else None

    def contains(self, value: Any) -> bool:
        """Bloom filter: False if ``value`` was certainly never pushed, True if it probably was."""
        if self.kind != Kind.BLOOM:
            raise TypeError("contains() is for bloom_filter maps; use `key in map`")
        # The kernel reads the candidate value from the "value" pointer of a lookup.
        return ops.map_lookup_elem(self.fileno(), None, self._value(value))

    # ---- map-in-map --------------------------------------------------------------------------

    def inner_map(self, key: Key) -> Optional["Map"]:
        """Map-in-map: open the inner map stored at ``key`` (None when the slot is empty)."""
        if not self._rules.needs_inner_map:
            raise TypeError("inner_map() is for array_of_maps and hash_of_maps")
        map_id = self.lookup(key)
        return None if map_id is None else Map.from_id(map_id)

    # ---- batch -------------------------------------------------------------------------------

    def update_batch(self, keys: Any, values: Any, flags: int = UpdateFlags.ANY, *, fallback: bool = False) -> int:
        """Write many elements from fixed-size key and value records (see :mod:`corebpf.maps.batch`).

        ``fallback=True`` forces the per-element path that is used automatically on kernels
        without batch support. Returns the number of elements written."""
        return _batch.update_batch(self, keys, values, int(flags), fallback=fallback)

    def lookup_batch(self, *, fallback: bool = False, chunk: Optional[int] = None) -> tuple[Any, Any]:
        """Every element as ``(keys, values)`` numpy uint8 arrays of shape (n, key_size) and
        (n, value_size) — per-CPU: (n, cpus, round_up(value_size, 8))."""
        return _batch.lookup_batch(self, fallback=fallback, chunk=chunk)

    def lookup_and_delete_batch(self, *, fallback: bool = False, chunk: Optional[int] = None) -> tuple[Any, Any]:
        """Like :meth:`lookup_batch`, removing what it returns."""
        return _batch.lookup_batch(self, delete=True, fallback=fallback, chunk=chunk)

    def delete_batch(self, keys: Any, *, fallback: bool = False) -> int:
        """Delete many keys given as fixed-size records; returns the number deleted."""
        return _batch.delete_batch(self, keys, fallback=fallback)


class _ItemsView(ItemsView):  # type: ignore[type-arg]
    def __iter__(self) -> Iterator[tuple[bytes, Value]]:
        m: Map = self._mapping  # type: ignore[assignment]
        for key in m:
            value = m.lookup(key)
            if value is not None:
                yield key, value


class _ValuesView(ValuesView):  # type: ignore[type-arg]
    def __iter__(self) -> Iterator[Value]:
        for _, value in _ItemsView(self._mapping):
            yield value


def _elem_attr(fd: int, key: "bytes | None", value: bytearray) -> g.MapElemAttr:
    attr = g.MapElemAttr(map_fd=fd, key=ops.addr(key))
    attr.value = ops.addr(value)
    return attr


def _bytes(obj: Any, what: str) -> bytes:
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    if hasattr(obj, "tobytes"):  # numpy scalars and arrays
        return bytes(obj.tobytes())
    raise TypeError(f"{what} must be bytes-like, not {type(obj).__name__}")


def _fileno(obj: Any) -> int:
    if isinstance(obj, int):
        return obj
    if hasattr(obj, "fileno"):
        return int(obj.fileno())
    raise TypeError(f"expected an fd or an object with fileno(), not {type(obj).__name__}")


def _explain_create_error(exc: BPFError, mtype: MapType, name: str) -> BPFError:
    """The same error, with a hint naming what this map type needs."""
    rules = rules_for(mtype)
    tname = mtype.name.lower()
    err = exc.errno or 0
    if err in (errno.EINVAL, errno.EOPNOTSUPP, 524):
        hint = (f"{tname} maps need Linux {rules.since} or later and the matching kernel config; "
                f"if the kernel has them, check key/value sizes, max_entries and flags"
                + (f" ({rules.note})" if rules.note else "") + "; 'corebpf doctor' lists the map types this kernel supports")
    else:
        hint = exc.hint
    detail = f"{tname} map{' ' + repr(name) if name else ''}"
    return error_class(err)(err, exc.command, hint, detail)


__all__ = ["Map", "MapInfo", "UpdateFlags"]
