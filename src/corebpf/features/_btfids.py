"""A minimal, private scan of kernel BTF: type ids of a few named types, struct members, sizes.

Probes need attach targets (``attach_btf_id`` of a function for fentry/LSM, of a struct for
struct_ops). This walks the type section once as 32-bit words (no decoding of types we do not
need), which keeps it fast enough for a cold doctor run. The full BTF reader is ``corebpf.btf``.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Iterable, Optional

from ..errors import BTFError

KIND_INT, KIND_STRUCT, KIND_UNION, KIND_FUNC, KIND_TYPEDEF = 1, 4, 5, 12, 8
# extra 32-bit words after the 3-word header, per kind: (fixed, per vlen item)
_EXTRA = {1: (1, 0), 3: (3, 0), 4: (0, 3), 5: (0, 3), 6: (0, 2), 13: (0, 2), 14: (1, 0), 15: (0, 3),
          17: (1, 0), 19: (0, 3)}


@dataclass(frozen=True)
class BTFType:
    """What a probe needs to know about one type: its id, kind, size and member names."""

    type_id: int
    kind: int
    size: int
    members: tuple[str, ...]
    offsets: tuple[int, ...] = ()  # byte offsets of the members (structs and unions)


def find_types(data: bytes, wanted: Iterable[tuple[str, int]]) -> dict[tuple[str, int], BTFType]:
    """Find ``(name, kind)`` pairs in raw BTF ``data``; missing ones are absent from the result.

    Raises :class:`BTFError` on a malformed blob.
    """
    try:
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
    except struct.error as exc:
        raise BTFError(f"BTF header truncated: {exc}") from None
    if magic != 0xEB9F:
        raise BTFError(f"bad BTF magic {magic:#x} at offset 0")
    t0, s0 = hdr_len + type_off, hdr_len + str_off
    strings = data[s0:s0 + str_len]
    if len(strings) != str_len or (type_len & 3) or t0 + type_len > len(data):
        raise BTFError("BTF sections run past the end of the data")
    by_off: dict[int, list[tuple[str, int]]] = {}
    for name, kind in wanted:
        pos = strings.find(b"\0" + name.encode() + b"\0")
        if pos >= 0:
            by_off.setdefault(pos + 1, []).append((name, kind))
    found: dict[tuple[str, int], BTFType] = {}
    total = sum(len(v) for v in by_off.values())
    if not total:
        return found
    words = memoryview(data)[t0:t0 + type_len].cast("I")
    n = len(words)
    steps: dict[int, int] = {}  # info word -> record length in words (few distinct values: cache them)
    i, type_id = 0, 1
    try:
        while i < n:
            info = words[i + 1]
            step = steps.get(info)
            if step is None:
                fixed, per = _EXTRA.get((info >> 24) & 0x1F, (0, 0))
                step = steps[info] = 3 + fixed + per * (info & 0xFFFF)
            if words[i] in by_off:
                kind = (info >> 24) & 0x1F
                for name, want_kind in by_off[words[i]]:
                    if kind == want_kind and (name, kind) not in found:
                        members: tuple[str, ...] = ()
                        offsets: tuple[int, ...] = ()
                        if kind in (KIND_STRUCT, KIND_UNION):
                            members = tuple(_name(strings, words[i + 3 + 3 * k]) for k in range(info & 0xFFFF))
                            # member offset in bits; with kind_flag the low 24 bits (bitfield size above)
                            mask = 0xFFFFFF if info >> 31 else 0xFFFFFFFF
                            offsets = tuple((words[i + 5 + 3 * k] & mask) // 8 for k in range(info & 0xFFFF))
                        found[(name, kind)] = BTFType(type_id, kind, words[i + 2], members, offsets)
                if len(found) == total:
                    break
            i += step
            type_id += 1
        else:
            if i != n:
                raise IndexError
    except IndexError:
        raise BTFError(f"BTF type {type_id} runs past the end of the type section") from None
    return found


def _name(strings: bytes, off: int) -> str:
    end = strings.find(b"\0", off)
    return strings[off:end if end >= 0 else None].decode(errors="replace")


_cache: dict[tuple[str, int], Optional[BTFType]] = {}
_registered: list[tuple[str, int]] = []  # names probes will want: looked up together on the first scan
_scan_lock = threading.Lock()  # probes run on threads: one scan at a time, the others wait for its result


def vmlinux_types(wanted: Iterable[tuple[str, int]], path: str = "/sys/kernel/btf/vmlinux") -> dict[tuple[str, int], Optional[BTFType]]:
    """Look ``wanted`` up in the kernel's BTF, caching per process; unreadable BTF gives None values."""
    wanted = list(wanted)
    with _scan_lock:
        _scan(wanted, path)
        return {w: _cache[w] for w in wanted}


def register(names: Iterable[tuple[str, int]]) -> None:
    """Declare names that will be looked up, so the first scan finds them all in one pass."""
    with _scan_lock:
        _registered.extend(n for n in names if n not in _registered)


def _scan(wanted: list[tuple[str, int]], path: str) -> None:
    missing = [w for w in wanted if w not in _cache]
    if missing:  # a pass costs the same for one name or ten: take every registered one along
        missing += [w for w in _registered if w not in _cache and w not in missing]
    if missing:
        try:
            with open(path, "rb") as f:
                data = f.read()
            found = find_types(data, missing)
        except (OSError, BTFError):
            found = {}
        for w in missing:
            _cache[w] = found.get(w)
