"""Per-CPU values: one slot per *possible* CPU, each rounded up to 8 bytes.

User space always exchanges the whole set: the kernel copies ``round_up(value_size, 8)`` bytes for
every possible CPU (not just online ones), so buffers are sized from
``/sys/devices/system/cpu/possible``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence


def parse_cpu_list(text: str) -> list[int]:
    """CPU numbers of a kernel cpulist such as ``"0-3,8,10-11"``."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            start, end = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"malformed CPU list {text!r}") from None
        cpus.extend(range(start, end + 1))
    return cpus


@functools.lru_cache(maxsize=1)
def possible_cpus() -> int:
    """How many CPUs per-CPU maps hold values for (highest possible CPU + 1)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            cpus = parse_cpu_list(f.read())
        return max(cpus) + 1 if cpus else 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


def slot_size(value_size: int) -> int:
    """Bytes each CPU's value occupies in a user-space buffer."""
    return (value_size + 7) & ~7


def buffer_size(value_size: int, ncpus: int | None = None) -> int:
    """Bytes of a whole per-CPU value."""
    return slot_size(value_size) * (possible_cpus() if ncpus is None else ncpus)


def unpack(buf: bytes | bytearray | memoryview, value_size: int, ncpus: int | None = None) -> list[bytes]:
    """Split a per-CPU buffer into one ``value_size`` bytes object per CPU."""
    n = possible_cpus() if ncpus is None else ncpus
    stride = slot_size(value_size)
    mv = memoryview(buf)
    return [bytes(mv[i * stride:i * stride + value_size]) for i in range(n)]


def pack(values: "bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview]", value_size: int,
         ncpus: int | None = None) -> bytearray:
    """Build a per-CPU buffer from one value per CPU, or one value to copy to every CPU."""
    n = possible_cpus() if ncpus is None else ncpus
    stride = slot_size(value_size)
    out = bytearray(stride * n)
    if isinstance(values, (bytes, bytearray, memoryview)):
        raw = bytes(values)
        if len(raw) == stride * n and len(raw) != value_size:
            return bytearray(raw)  # already a packed per-CPU buffer
        items: Sequence[bytes | bytearray | memoryview] = [raw] * n
    else:
        items = values
        if len(items) != n:
            raise ValueError(f"per-CPU value needs one value per possible CPU ({n}), got {len(items)}")
    for i, item in enumerate(items):
        if len(item) != value_size:
            raise ValueError(f"per-CPU value for CPU {i} must be {value_size} bytes, got {len(item)}")
        out[i * stride:i * stride + value_size] = item
    return out


__all__ = ["parse_cpu_list", "possible_cpus", "slot_size", "buffer_size", "unpack", "pack"]
